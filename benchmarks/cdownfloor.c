// The kernel floor for `down`, in C: M "node" namespaces and N "pod" namespaces, each pod joined to node
// k % M by a veth pair (made in the node, peer placed straight into the pod) with an address and its links
// up, per pod a directory <dirroot>/<prefix>p<k> holding resolv.conf and hosts (as /etc/netns/<pod>), and
// per pod two files in its node's directory <dirroot>/<prefix>s/n<i>/ (as a state directory's sandbox record
// and IPAM reservation). Untimed build; then timed: the pods' namespaces removed (umount2 MNT_DETACH + unlink
// of the /run/netns name, what `ip netns del` does), on T threads taking names from a shared counter, then
// the nodes' the same way; then the pods' directories (unlink both files + rmdir) on T threads and beside
// them the node directories (unlink every file + rmdir) on T threads of their own. With a sixth argument
// `overlap` the namespaces and the directories are removed at the same time, as `down` does. Everything
// lives below a private network namespace of its own, so nothing touches the caller's.
// Usage: cdownfloor PREFIX N M T DIRROOT [overlap] -> prints "netns_s dirs_s total_s" (dirs_s: both kinds
// of directory; total_s: from the first removal to the last). Build: cc -O2 -pthread -o f cdownfloor.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *prefix, *dirroot;
static int N, M, seq, made_pods, made_nodes, made_dirs;
static atomic_int next_item;

static void ns_path(char *buf, size_t len, char kind, int k) {
  snprintf(buf, len, "/run/netns/%s%c%d", prefix, kind, k);
}
static void dir_path(char *buf, size_t len, int k) { snprintf(buf, len, "%s/%sp%d", dirroot, prefix, k); }
static void rm_ns(char kind, int k) {
  char p[256]; ns_path(p, sizeof p, kind, k); umount2(p, MNT_DETACH); unlink(p);
}
static void rm_dir(int k) {
  char d[512], f[600]; dir_path(d, sizeof d, k);
  snprintf(f, sizeof f, "%s/resolv.conf", d); unlink(f);
  snprintf(f, sizeof f, "%s/hosts", d); unlink(f);
  rmdir(d);
}
static void node_dir(char *buf, size_t len, int i) { snprintf(buf, len, "%s/%ss/n%d", dirroot, prefix, i); }
static void rm_node_dir(int i) {
  char d[512], f[600]; node_dir(d, sizeof d, i);
  for (int k = i; k < N; k += M) {
    snprintf(f, sizeof f, "%s/p%d.json", d, k); unlink(f);
    snprintf(f, sizeof f, "%s/ip%d", d, k); unlink(f);
  }
  rmdir(d);
}
static void rm_state_root(void) { char d[512]; snprintf(d, sizeof d, "%s/%ss", dirroot, prefix); rmdir(d); }
// whatever is left (a failure half way, or after the timed part: nothing)
static void cleanup(void) {
  for (int k = 0; k < made_pods; k++) rm_ns('p', k);
  for (int k = 0; k < made_nodes; k++) rm_ns('n', k);
  for (int k = 0; k < made_dirs; k++) rm_dir(k);
  if (made_dirs) { for (int i = 0; i < M; i++) rm_node_dir(i); rm_state_root(); }
}

struct req { struct nlmsghdr n; char buf[1024]; } __attribute__((aligned(8)));
static void add_attr(struct nlmsghdr *n, int type, const void *data, int len) {
  struct rtattr *rta = (struct rtattr *)((char *)n + NLMSG_ALIGN(n->nlmsg_len));
  rta->rta_type = type; rta->rta_len = RTA_LENGTH(len);
  if (len) memcpy(RTA_DATA(rta), data, len);
  n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + RTA_ALIGN(rta->rta_len);
}
static struct rtattr *nest(struct nlmsghdr *n, int type) {
  struct rtattr *r = (struct rtattr *)((char *)n + NLMSG_ALIGN(n->nlmsg_len));
  add_attr(n, type, NULL, 0); return r;
}
static void end_nest(struct nlmsghdr *n, struct rtattr *r) { r->rta_len = (char *)n + n->nlmsg_len - (char *)r; }
static void talk(int fd, struct nlmsghdr *n) {
  n->nlmsg_seq = ++seq; n->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  if (send(fd, n, n->nlmsg_len, 0) < 0) { perror("send"); exit(1); }
  char buf[4096]; int len = recv(fd, buf, sizeof buf, 0);
  struct nlmsghdr *h = (struct nlmsghdr *)buf;
  if (len < 0 || h->nlmsg_type != NLMSG_ERROR) { fprintf(stderr, "bad reply\n"); exit(1); }
  struct nlmsgerr *e = NLMSG_DATA(h);
  if (e->error) { fprintf(stderr, "netlink error %d\n", e->error); exit(1); }
}
static int nlsock(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("nl"); exit(1); }
  return fd;
}
static void link_up(int fd, int idx) {
  struct req r = {0}; r.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)); r.n.nlmsg_type = RTM_NEWLINK;
  struct ifinfomsg *i = NLMSG_DATA(&r.n); i->ifi_index = idx; i->ifi_flags = IFF_UP; i->ifi_change = IFF_UP;
  talk(fd, &r.n);
}
// a named namespace: the calling thread is left inside it
static void make_ns(char kind, int k) {
  char p[256]; ns_path(p, sizeof p, kind, k);
  int fd = open(p, O_CREAT | O_EXCL | O_RDONLY, 0444);
  if (fd < 0) { perror(p); exit(1); }
  close(fd);
  if (kind == 'p') made_pods = k + 1; else made_nodes = k + 1;
  if (unshare(CLONE_NEWNET) || mount("/proc/thread-self/ns/net", p, "none", MS_BIND, NULL)) { perror("ns"); exit(1); }
}
static void write_file(const char *path, const char *text) {
  int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (fd < 0 || write(fd, text, strlen(text)) < 0) { perror(path); exit(1); }
  close(fd);
}

static void *dir_worker(void *arg) {
  (void)arg;
  for (int k; (k = atomic_fetch_add(&next_item, 1)) < N;) rm_dir(k);
  return NULL;
}
static atomic_int next_node;
static void *node_dir_worker(void *arg) {
  (void)arg;
  for (int i; (i = atomic_fetch_add(&next_node, 1)) < M;) rm_node_dir(i);
  return NULL;
}
// the node directories on T threads of their own, beside the pods' directories
static void *remove_node_dirs(void *arg) {
  int T = *(int *)arg; pthread_t th[256];
  atomic_store(&next_node, 0);
  for (int i = 0; i < T; i++) pthread_create(&th[i], NULL, node_dir_worker, NULL);
  for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
  return NULL;
}
static void run_threads(int T, void *(*fn)(void *), void *arg) {
  pthread_t th[256]; atomic_store(&next_item, 0);
  for (int i = 0; i < T; i++) pthread_create(&th[i], NULL, fn, arg);
  for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
}
static double now(void);
struct timing { int threads; double seconds; };
// the pods' namespaces, then the nodes', each rank on its threads (a counter of their own: the directories
// may be removed at the same time)
static atomic_int next_ns;
static void *ns_worker2(void *arg) {
  char kind = *(char *)arg; int n = kind == 'p' ? N : M;
  for (int k; (k = atomic_fetch_add(&next_ns, 1)) < n;) rm_ns(kind, k);
  return NULL;
}
static void *remove_namespaces(void *arg) {
  struct timing *tm = arg; double t0 = now(); pthread_t th[256];
  static char kinds[2] = {'p', 'n'};
  for (int r = 0; r < 2; r++) {
    atomic_store(&next_ns, 0);
    for (int i = 0; i < tm->threads; i++) pthread_create(&th[i], NULL, ns_worker2, &kinds[r]);
    for (int i = 0; i < tm->threads; i++) pthread_join(th[i], NULL);
  }
  tm->seconds = now() - t0;
  return NULL;
}
static void remove_dirs(int T) {
  pthread_t nodes; pthread_create(&nodes, NULL, remove_node_dirs, &T);
  run_threads(T, dir_worker, NULL);
  pthread_join(nodes, NULL);
  rm_state_root();
}
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) { fprintf(stderr, "usage: cdownfloor PREFIX N M T DIRROOT [overlap]\n"); return 2; }
  int overlap = argc == 7 && strcmp(argv[6], "overlap") == 0;
  prefix = argv[1]; N = atoi(argv[2]); M = atoi(argv[3]); int T = atoi(argv[4]); dirroot = argv[5];
  if (T < 1) T = 1;
  if (T > 256) T = 256;
  if (unshare(CLONE_NEWNET)) { perror("unshare"); return 1; }
  int root = open("/proc/self/ns/net", O_RDONLY);
  mkdir("/run/netns", 0755);
  atexit(cleanup);
  { char d[512]; snprintf(d, sizeof d, "%s/%ss", dirroot, prefix); mkdir(d, 0700);
    for (int i = 0; i < M; i++) { node_dir(d, sizeof d, i); mkdir(d, 0700); } }
  int *node_fd = calloc(M, sizeof(int));  // a netlink socket in each node namespace
  for (int i = 0; i < M; i++) { make_ns('n', i); node_fd[i] = nlsock(); setns(root, CLONE_NEWNET); }
  for (int k = 0; k < N; k++) {
    char p[256], hname[IFNAMSIZ]; ns_path(p, sizeof p, 'p', k);
    snprintf(hname, sizeof hname, "v%d", k);
    make_ns('p', k);
    int pod = nlsock();
    int nsfd = open(p, O_RDONLY);
    setns(root, CLONE_NEWNET);
    int host = node_fd[k % M];
    struct req r = {0}; r.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)); r.n.nlmsg_type = RTM_NEWLINK;
    r.n.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    add_attr(&r.n, IFLA_IFNAME, hname, strlen(hname) + 1);
    struct rtattr *li = nest(&r.n, IFLA_LINKINFO);
    add_attr(&r.n, IFLA_INFO_KIND, "veth", 4);
    struct rtattr *data = nest(&r.n, IFLA_INFO_DATA);
    struct rtattr *peer = nest(&r.n, VETH_INFO_PEER);
    memset((char *)&r.n + NLMSG_ALIGN(r.n.nlmsg_len), 0, sizeof(struct ifinfomsg));
    r.n.nlmsg_len += NLMSG_ALIGN(sizeof(struct ifinfomsg));
    add_attr(&r.n, IFLA_IFNAME, "eth0", 5);
    add_attr(&r.n, IFLA_NET_NS_FD, &nsfd, 4);
    end_nest(&r.n, peer); end_nest(&r.n, data); end_nest(&r.n, li);
    talk(host, &r.n);
    // the pod end: address, up, lo up (its index read inside the pod's namespace)
    setns(nsfd, CLONE_NEWNET); int pidx = if_nametoindex("eth0"); setns(root, CLONE_NEWNET);
    close(nsfd);
    struct req a = {0}; a.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)); a.n.nlmsg_type = RTM_NEWADDR;
    a.n.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    struct ifaddrmsg *am = NLMSG_DATA(&a.n); am->ifa_family = AF_INET; am->ifa_prefixlen = 16; am->ifa_index = pidx;
    unsigned int ip = htonl(0x0afa0000u + k + 1);
    add_attr(&a.n, IFA_LOCAL, &ip, 4); add_attr(&a.n, IFA_ADDRESS, &ip, 4);
    talk(pod, &a.n);
    link_up(pod, pidx); link_up(pod, 1);
    close(pod);
    char d[512], f[600]; dir_path(d, sizeof d, k);
    if (mkdir(d, 0755) && errno != EEXIST) { perror(d); return 1; }
    made_dirs = k + 1;
    snprintf(f, sizeof f, "%s/resolv.conf", d); write_file(f, "nameserver 10.96.0.10\nsearch default.svc.cluster.local\n");
    snprintf(f, sizeof f, "%s/hosts", d); write_file(f, "127.0.0.1 localhost\n");
    node_dir(d, sizeof d, k % M);
    snprintf(f, sizeof f, "%s/p%d.json", d, k); write_file(f, "{\"netns\": \"pod\", \"ip\": \"10.250.0.1\"}\n");
    snprintf(f, sizeof f, "%s/ip%d", d, k); write_file(f, "pod\neth0\n");
  }
  for (int i = 0; i < M; i++) close(node_fd[i]);
  sync();
  double t0 = now(), t_ns, t_dirs;
  if (overlap) {
    pthread_t ns_thread; struct timing tm = {T, 0};
    pthread_create(&ns_thread, NULL, remove_namespaces, &tm);
    remove_dirs(T); t_dirs = now() - t0;
    pthread_join(ns_thread, NULL); t_ns = tm.seconds;
  } else {
    struct timing tm = {T, 0};
    remove_namespaces(&tm); t_ns = tm.seconds;
    double t1 = now(); remove_dirs(T); t_dirs = now() - t1;
  }
  double total = now() - t0;
  made_pods = made_nodes = made_dirs = 0;
  printf("%.3f %.3f %.3f\n", t_ns, t_dirs, total);
  return 0;
}
