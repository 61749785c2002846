"""netsim's store on etcd: a stdlib client for etcd's JSON gateway (client), the Store backend (store) and
a private local etcd server per cluster (server)."""
