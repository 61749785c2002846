"""kubectl-shaped tables for `netsim get`."""

from __future__ import annotations

from netsim.printers import render_table, short_duration, table

NOW = 1_700_000_100.0
CREATED = "2023-11-14T22:13:20Z"  # NOW - 100s


def test_short_duration_matches_kubectl():
    assert [short_duration(s) for s in (5, 119, 150, 600, 3 * 3600 + 300, 30 * 3600, 5 * 86400)] == [
        "5s", "119s", "2m30s", "10m", "3h5m", "30h", "5d"]


def test_pods_wide_and_all_namespaces():
    pod = {"metadata": {"name": "web-1", "namespace": "shop", "creationTimestamp": CREATED},
           "spec": {"nodeName": "node-2", "containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"phase": "Running", "podIP": "10.244.1.5",
                      "containerStatuses": [{"ready": True, "restartCount": 2}, {"ready": False, "restartCount": 1}]}}
    header, rows = table("Pod", [pod], wide=True, all_namespaces=True, now=NOW)
    assert header == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert rows == [["shop", "web-1", "1/2", "Running", "3", "100s", "10.244.1.5", "node-2"]]
    text = render_table(header, rows)
    assert text.splitlines()[1].startswith("shop        web-1")


def test_services_show_cluster_ip_ports_and_endpoints():
    svc = {"metadata": {"name": "web", "namespace": "default", "creationTimestamp": CREATED},
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.20",
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}}
    lb = {"metadata": {"name": "lb", "namespace": "default"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.21",
                                                                      "ports": [{"port": 443}]}}
    eps = {"default/web": ["10.244.0.5:8080", "10.244.1.5:8080", "10.244.2.5:8080", "10.244.3.5:8080"]}
    _, rows = table("Service", [svc, lb], endpoints=eps, now=NOW)
    assert rows[0][:6] == ["web", "NodePort", "10.96.0.20", "<none>", "80:30080/TCP",
                           "10.244.0.5:8080,10.244.1.5:8080,10.244.2.5:8080 + 1 more..."]
    assert rows[1][3] == "<pending>" and rows[1][5] == "<none>"


def test_deployment_and_job_columns():
    dep = {"metadata": {"name": "web"}, "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "updatedReplicas": 3,
                                                                           "availableReplicas": 2}}
    assert table("Deployment", [dep], now=NOW)[1][0][:4] == ["web", "2/3", "3", "2"]
    job = {"metadata": {"name": "pi"}, "spec": {"completions": 3},
           "status": {"succeeded": 3, "conditions": [{"type": "Complete", "status": "True"}],
                      "startTime": "2023-11-14T22:13:20Z", "completionTime": "2023-11-14T22:13:50Z"}}
    assert table("Job", [job], now=NOW)[1][0][:4] == ["pi", "Complete", "3/3", "30s"]
