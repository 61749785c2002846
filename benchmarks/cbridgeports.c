// The kernel's own price of a bridge port, in C: N pod sandboxes as in cfloor.c (a named namespace, a veth
// made in the node's namespace with its peer placed straight in the pod's, an address on the pod end, links
// up), with the host ends either enslaved to one bridge (flannel's cni0: `bridge`) or left as routed veths
// (calico/canal: `routed`). `bridge` and `routed` leave IPv6 on in the pods, as a new namespace has it;
// `bridge-noipv6` / `routed-noipv6` turn it off in each pod first, to show what the pods' own IPv6 (link-local
// address, DAD, MLD reports, router solicitations, all multicast) costs once a bridge floods it to every
// other port. After the loop it waits SETTLE seconds with every sandbox up (the kernel's timers keep
// sending), then prints one JSON line: the loop's seconds, and this process's user/system CPU over loop and
// settle (softirq work done in its context is counted as its system time; work on other CPUs is not), and
// the packets every interface of the node's namespace received and sent (the bridge's floods are its ports' tx).
// Everything happens below a private node namespace; sandboxes are /run/netns/PREFIX<k>, removed at exit.
// Usage: cbridgeports MODE N SETTLE PREFIX. Build: cc -O2 -o cbridgeports cbridgeports.c
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int seq, made;
static const char *prefix;

static void cleanup(void) {
  for (int k = 0; k < made; k++) {
    char path[128]; snprintf(path, sizeof path, "/run/netns/%s%d", prefix, k);
    umount2(path, MNT_DETACH); unlink(path);
  }
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
static void peer_header(struct nlmsghdr *n) {
  memset((char *)n + NLMSG_ALIGN(n->nlmsg_len), 0, sizeof(struct ifinfomsg));
  n->nlmsg_len += NLMSG_ALIGN(sizeof(struct ifinfomsg));
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
// up, and enslaved to `master` when it is not 0: one RTM_NEWLINK
static void link_set(int fd, int idx, int master) {
  struct req r = {0}; r.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)); r.n.nlmsg_type = RTM_NEWLINK;
  struct ifinfomsg *i = NLMSG_DATA(&r.n); i->ifi_index = idx; i->ifi_flags = IFF_UP; i->ifi_change = IFF_UP;
  if (master) add_attr(&r.n, IFLA_MASTER, &master, 4);
  talk(fd, &r.n);
}
static void write_file(const char *path, const char *value) {
  int fd = open(path, O_WRONLY);
  if (fd < 0 || write(fd, value, strlen(value)) < 0) { perror(path); exit(1); }
  close(fd);
}
static double secs(struct timeval t) { return t.tv_sec + t.tv_usec / 1e6; }
// packets received and sent by every interface of the calling thread's namespace (/proc/self/net/dev)
static void packets(long *rx, long *tx) {
  FILE *f = fopen("/proc/thread-self/net/dev", "r"); char line[512]; *rx = *tx = 0;
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    char *c = strchr(line, ':'); long v[16];
    if (!c || sscanf(c + 1, "%ld %ld %ld %ld %ld %ld %ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3], &v[4],
                     &v[5], &v[6], &v[7], &v[8], &v[9]) != 10) continue;
    *rx += v[1]; *tx += v[9];
  }
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: cbridgeports bridge|routed[-noipv6] N SETTLE PREFIX\n"); return 2; }
  const char *mode = argv[1];
  int N = atoi(argv[2]), settle = atoi(argv[3]);
  prefix = argv[4];
  int bridged = strncmp(mode, "bridge", 6) == 0, noipv6 = strstr(mode, "noipv6") != NULL;
  if (unshare(CLONE_NEWNET)) { perror("unshare"); return 1; }
  int root = open("/proc/self/ns/net", O_RDONLY);
  int host = nlsock();
  mkdir("/run/netns", 0755);
  atexit(cleanup);
  int br = 0;
  if (bridged) {
    struct req r = {0}; r.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)); r.n.nlmsg_type = RTM_NEWLINK;
    r.n.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    add_attr(&r.n, IFLA_IFNAME, "cni0", 5);
    struct rtattr *li = nest(&r.n, IFLA_LINKINFO);
    add_attr(&r.n, IFLA_INFO_KIND, "bridge", 6);
    end_nest(&r.n, li);
    talk(host, &r.n);
    br = if_nametoindex("cni0");
    link_set(host, br, 0);
  }
  int *fds = calloc(N, sizeof(int));
  struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int k = 0; k < N; k++) {
    char path[128], hname[IFNAMSIZ]; snprintf(path, sizeof path, "/run/netns/%s%d", prefix, k);
    snprintf(hname, sizeof hname, "cb%d", k);
    close(open(path, O_CREAT | O_EXCL | O_RDONLY, 0444)); made = k + 1;
    if (unshare(CLONE_NEWNET) || mount("/proc/thread-self/ns/net", path, "none", MS_BIND, NULL)) { perror("ns"); return 1; }
    if (noipv6) { write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
                  write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1"); }
    int pod = nlsock(); fds[k] = pod;
    int nsfd = open(path, O_RDONLY);
    setns(root, CLONE_NEWNET);
    struct req r = {0}; r.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)); r.n.nlmsg_type = RTM_NEWLINK;
    r.n.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    add_attr(&r.n, IFLA_IFNAME, hname, strlen(hname) + 1);
    struct rtattr *li = nest(&r.n, IFLA_LINKINFO);
    add_attr(&r.n, IFLA_INFO_KIND, "veth", 4);
    struct rtattr *data = nest(&r.n, IFLA_INFO_DATA);
    struct rtattr *peer = nest(&r.n, VETH_INFO_PEER);
    peer_header(&r.n);
    add_attr(&r.n, IFLA_IFNAME, "eth0", 5);
    add_attr(&r.n, IFLA_NET_NS_FD, &nsfd, 4);
    end_nest(&r.n, peer); end_nest(&r.n, data); end_nest(&r.n, li);
    talk(host, &r.n);
    close(nsfd);
    int hidx = if_nametoindex(hname);
    int pfd = open(path, O_RDONLY); setns(pfd, CLONE_NEWNET); int pidx = if_nametoindex("eth0"); setns(root, CLONE_NEWNET);
    close(pfd);
    struct req a = {0}; a.n.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)); a.n.nlmsg_type = RTM_NEWADDR;
    a.n.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    struct ifaddrmsg *am = NLMSG_DATA(&a.n); am->ifa_family = AF_INET; am->ifa_prefixlen = 16; am->ifa_index = pidx;
    unsigned int ip = htonl(0x0afa0000u + k + 2);
    add_attr(&a.n, IFA_LOCAL, &ip, 4); add_attr(&a.n, IFA_ADDRESS, &ip, 4);
    talk(pod, &a.n);
    link_set(pod, pidx, 0); link_set(pod, 1, 0); link_set(host, hidx, br);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (settle > 0) sleep(settle);
  struct rusage ru; getrusage(RUSAGE_SELF, &ru);
  long rx, tx; packets(&rx, &tx);
  printf("{\"mode\": \"%s\", \"n\": %d, \"loop_s\": %.3f, \"settle_s\": %d, \"user_s\": %.3f, \"sys_s\": %.3f, "
         "\"node_rx_packets\": %ld, \"node_tx_packets\": %ld}\n",
         mode, N, (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, settle, secs(ru.ru_utime),
         secs(ru.ru_stime), rx, tx);
  for (int k = 0; k < N; k++) close(fds[k]);
  return 0;
}
