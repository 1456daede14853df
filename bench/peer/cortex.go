package peer

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// cortexConfig is the YAML every Cortex node of a test or bench cluster
// shares (fmt verbs: the replication factor, the shared blocks
// directory); the node-specific settings are flags (CortexArgs and
// Start). Everything listens on loopback; the rings gossip over
// memberlist.
const cortexConfig = `auth_enabled: false
server:
  http_listen_address: 127.0.0.1
  grpc_listen_address: 127.0.0.1
  grpc_server_max_recv_msg_size: 104857600
  grpc_server_max_send_msg_size: 104857600
  log_level: warn
distributor:
  shard_by_all_labels: true
  pool:
    health_check_ingesters: true
  ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: memberlist
ingester_client:
  grpc_client_config:
    max_recv_msg_size: 104857600
    max_send_msg_size: 104857600
ingester:
  lifecycler:
    address: 127.0.0.1
    join_after: 0s
    observe_period: 0s
    min_ready_duration: 0s
    final_sleep: 0s
    num_tokens: 128
    ring:
      kvstore:
        store: memberlist
      replication_factor: %d
memberlist:
  bind_addr: [127.0.0.1]
  abort_if_cluster_join_fails: false
blocks_storage:
  backend: filesystem
  filesystem:
    dir: %s
store_gateway:
  sharding_enabled: true
  sharding_ring:
    instance_addr: 127.0.0.1
    wait_stability_min_duration: 0s
    kvstore:
      store: memberlist
limits:
  ingestion_rate: 10000000
  ingestion_burst_size: 20000000
  out_of_order_time_window: 6h
`

// CortexConfig is the configuration file of a loopback Cortex cluster with
// replication factor rf whose nodes share blocksDir. The settings avoid
// the gotchas of SCALEOUT-NOTES: the store-gateway ring's wait for
// stability (a minute before /ready), the default 25k samples/s tenant
// limit (429 to any burst), rings that would advertise a non-loopback
// address.
func CortexConfig(rf int, blocksDir string) string { return fmt.Sprintf(cortexConfig, rf, blocksDir) }

// CortexArgs are the flags of node i of a cluster: the write and read
// path modules, its gRPC and memberlist ports, its ingester id, and the
// memberlist ports of every node to join. The HTTP port and the data
// directories are Start's (or the caller's).
func CortexArgs(configFile string, i, grpcPort, gossipPort int, gossipPorts []int) []string {
	args := []string{"-config.file=" + configFile, "-target=distributor,ingester,querier,store-gateway",
		fmt.Sprintf("-server.grpc-listen-port=%d", grpcPort), fmt.Sprintf("-memberlist.bind-port=%d", gossipPort),
		fmt.Sprintf("-ingester.lifecycler.ID=ingester-%d", i),
		"-querier.instance-addr=127.0.0.1", "-frontend.instance-addr=127.0.0.1"}
	for _, p := range gossipPorts {
		args = append(args, fmt.Sprintf("-memberlist.join=127.0.0.1:%d", p))
	}
	return args
}

// CortexRingActive reports whether the Cortex node at base sees at least
// n ACTIVE ingesters in its ring.
func CortexRingActive(ctx context.Context, base string, n int) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/ingester/ring", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.Count(string(b), ">ACTIVE<") >= n
}

// FreePort returns a TCP port free on 127.0.0.1 a moment ago.
func FreePort() (int, error) { return freePort() }
