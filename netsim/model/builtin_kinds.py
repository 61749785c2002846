"""Every built-in kind a current Kubernetes API server serves: group/versions, scope, resource names.

The table is what `kubectl api-resources` lists against a Kubernetes v1.32 API server (kube-apiserver's
built-in groups: pkg/controlplane/instance.go and the storage providers it installs; versions that are
still served, not the removed betas such as extensions/v1beta1 or policy/v1beta1). netsim emulates a few of
these kinds (see netsim.model.registry.KINDS); the rest are validated for their metadata, stored, listed,
described and deleted, as an API server without their controllers would.

Kinds that exist only as requests (TokenReview, SubjectAccessReview, Binding, Eviction, ...) are listed so
that a manifest holding one is named correctly, but a create of them is refused: the API server never stores
them either.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuiltinKind:
    kind: str
    group: str  # "" for the core group
    versions: tuple[str, ...]  # served versions, preferred first
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    storable: bool = True  # False for request-only kinds (reviews, bindings) that are never stored

    @property
    def api_versions(self) -> tuple[str, ...]:
        return tuple(f"{self.group}/{v}" if self.group else v for v in self.versions)


def _k(kind: str, group: str, versions: str, plural: str, namespaced: bool, short: str = "",
       storable: bool = True) -> BuiltinKind:
    return BuiltinKind(kind, group, tuple(versions.split()), plural, namespaced,
                       tuple(short.split()), storable)


N, C = True, False  # namespaced, cluster-scoped

BUILTIN_KINDS: tuple[BuiltinKind, ...] = (
    # core/v1
    _k("Binding", "", "v1", "bindings", N, storable=False),
    _k("ComponentStatus", "", "v1", "componentstatuses", C, "cs", storable=False),
    _k("ConfigMap", "", "v1", "configmaps", N, "cm"),
    _k("Endpoints", "", "v1", "endpoints", N, "ep"),
    _k("Event", "", "v1", "events", N, "ev"),
    _k("LimitRange", "", "v1", "limitranges", N, "limits"),
    _k("Namespace", "", "v1", "namespaces", C, "ns"),
    _k("Node", "", "v1", "nodes", C, "no"),
    _k("PersistentVolumeClaim", "", "v1", "persistentvolumeclaims", N, "pvc"),
    _k("PersistentVolume", "", "v1", "persistentvolumes", C, "pv"),
    _k("Pod", "", "v1", "pods", N, "po"),
    _k("PodTemplate", "", "v1", "podtemplates", N),
    _k("ReplicationController", "", "v1", "replicationcontrollers", N, "rc"),
    _k("ResourceQuota", "", "v1", "resourcequotas", N, "quota"),
    _k("Secret", "", "v1", "secrets", N),
    _k("ServiceAccount", "", "v1", "serviceaccounts", N, "sa"),
    _k("Service", "", "v1", "services", N, "svc"),
    # admissionregistration.k8s.io
    _k("MutatingWebhookConfiguration", "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", C),
    _k("ValidatingAdmissionPolicy", "admissionregistration.k8s.io", "v1 v1beta1", "validatingadmissionpolicies", C),
    _k("ValidatingAdmissionPolicyBinding", "admissionregistration.k8s.io", "v1 v1beta1",
       "validatingadmissionpolicybindings", C),
    _k("ValidatingWebhookConfiguration", "admissionregistration.k8s.io", "v1",
       "validatingwebhookconfigurations", C),
    # apiextensions.k8s.io, apiregistration.k8s.io
    _k("CustomResourceDefinition", "apiextensions.k8s.io", "v1", "customresourcedefinitions", C, "crd crds"),
    _k("APIService", "apiregistration.k8s.io", "v1", "apiservices", C),
    # apps
    _k("ControllerRevision", "apps", "v1", "controllerrevisions", N),
    _k("DaemonSet", "apps", "v1", "daemonsets", N, "ds"),
    _k("Deployment", "apps", "v1", "deployments", N, "deploy"),
    _k("ReplicaSet", "apps", "v1", "replicasets", N, "rs"),
    _k("StatefulSet", "apps", "v1", "statefulsets", N, "sts"),
    # authentication / authorization: requests, never stored
    _k("SelfSubjectReview", "authentication.k8s.io", "v1", "selfsubjectreviews", C, storable=False),
    _k("TokenReview", "authentication.k8s.io", "v1", "tokenreviews", C, storable=False),
    _k("LocalSubjectAccessReview", "authorization.k8s.io", "v1", "localsubjectaccessreviews", N, storable=False),
    _k("SelfSubjectAccessReview", "authorization.k8s.io", "v1", "selfsubjectaccessreviews", C, storable=False),
    _k("SelfSubjectRulesReview", "authorization.k8s.io", "v1", "selfsubjectrulesreviews", C, storable=False),
    _k("SubjectAccessReview", "authorization.k8s.io", "v1", "subjectaccessreviews", C, storable=False),
    # autoscaling, batch
    _k("HorizontalPodAutoscaler", "autoscaling", "v2 v1", "horizontalpodautoscalers", N, "hpa"),
    _k("CronJob", "batch", "v1", "cronjobs", N, "cj"),
    _k("Job", "batch", "v1", "jobs", N),
    # certificates, coordination, discovery, events
    _k("CertificateSigningRequest", "certificates.k8s.io", "v1", "certificatesigningrequests", C, "csr"),
    _k("Lease", "coordination.k8s.io", "v1", "leases", N),
    _k("EndpointSlice", "discovery.k8s.io", "v1", "endpointslices", N),
    # events.k8s.io/v1 Event is the same resource as core Event; core's entry above is the one stored
    # flowcontrol
    _k("FlowSchema", "flowcontrol.apiserver.k8s.io", "v1 v1beta3", "flowschemas", C),
    _k("PriorityLevelConfiguration", "flowcontrol.apiserver.k8s.io", "v1 v1beta3",
       "prioritylevelconfigurations", C),
    # networking.k8s.io
    _k("IngressClass", "networking.k8s.io", "v1", "ingressclasses", C),
    _k("Ingress", "networking.k8s.io", "v1", "ingresses", N, "ing"),
    _k("NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies", N, "netpol"),
    _k("IPAddress", "networking.k8s.io", "v1beta1", "ipaddresses", C, "ip"),
    _k("ServiceCIDR", "networking.k8s.io", "v1beta1", "servicecidrs", C),
    # node, policy, rbac, scheduling
    _k("RuntimeClass", "node.k8s.io", "v1", "runtimeclasses", C),
    _k("PodDisruptionBudget", "policy", "v1", "poddisruptionbudgets", N, "pdb"),
    _k("Eviction", "policy", "v1", "evictions", N, storable=False),
    _k("ClusterRoleBinding", "rbac.authorization.k8s.io", "v1", "clusterrolebindings", C),
    _k("ClusterRole", "rbac.authorization.k8s.io", "v1", "clusterroles", C),
    _k("RoleBinding", "rbac.authorization.k8s.io", "v1", "rolebindings", N),
    _k("Role", "rbac.authorization.k8s.io", "v1", "roles", N),
    _k("PriorityClass", "scheduling.k8s.io", "v1", "priorityclasses", C, "pc"),
    # storage.k8s.io
    _k("CSIDriver", "storage.k8s.io", "v1", "csidrivers", C),
    _k("CSINode", "storage.k8s.io", "v1", "csinodes", C),
    _k("CSIStorageCapacity", "storage.k8s.io", "v1", "csistoragecapacities", N),
    _k("StorageClass", "storage.k8s.io", "v1", "storageclasses", C, "sc"),
    _k("VolumeAttachment", "storage.k8s.io", "v1", "volumeattachments", C),
    _k("VolumeAttributesClass", "storage.k8s.io", "v1beta1", "volumeattributesclasses", C, "vac"),
    # resource.k8s.io (dynamic resource allocation, beta in v1.32)
    _k("DeviceClass", "resource.k8s.io", "v1beta1", "deviceclasses", C),
    _k("ResourceClaim", "resource.k8s.io", "v1beta1", "resourceclaims", N),
    _k("ResourceClaimTemplate", "resource.k8s.io", "v1beta1", "resourceclaimtemplates", N),
    _k("ResourceSlice", "resource.k8s.io", "v1beta1", "resourceslices", C),
)

BY_KIND: dict[str, BuiltinKind] = {k.kind: k for k in BUILTIN_KINDS}

# events.k8s.io/v1 serves the core Event resource under another group: the same objects.
EXTRA_API_VERSIONS: dict[str, tuple[str, ...]] = {"Event": ("events.k8s.io/v1",)}


def builtin(kind: str) -> BuiltinKind | None:
    return BY_KIND.get(kind)


def served_api_versions(kind: str) -> tuple[str, ...]:
    """Every apiVersion under which the API server serves `kind` (empty for kinds it does not have)."""
    info = BY_KIND.get(kind)
    if info is None:
        return ()
    return info.api_versions + EXTRA_API_VERSIONS.get(kind, ())
