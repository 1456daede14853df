package discovery

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/agent/scrape"
)

// kubeAPI is a Kubernetes API server for pods, endpoints and services as
// its REST API is documented: lists carry metadata.resourceVersion; a
// watch (?watch=1&resourceVersion=N) streams {"type","object"} events
// newer than N and stays open; a version older than the retained history
// gets an ERROR event with code 410 (Gone); requests need the bearer token.
type kubeAPI struct {
	mu      sync.Mutex
	cond    *sync.Cond
	rv      int
	objects map[string]map[string]map[string]any // resource -> ns/name -> object
	events  []kubeEvent
	oldest  int // versions before this are compacted away
	closed  bool
	kill    int // bumped to end the open watches
	srv     *httptest.Server
	watches int // watch requests served
	lists   int // list requests served
	denied  int // requests without the token
}

// waitRequest waits until a request was denied or served after the call.
func (k *kubeAPI) waitRequest() {
	k.mu.Lock()
	defer k.mu.Unlock()
	n := k.denied + k.lists + k.watches
	for k.denied+k.lists+k.watches == n && !k.closed {
		k.cond.Wait()
	}
}

type kubeEvent struct {
	rv       int
	resource string
	typ      string
	obj      map[string]any
}

func newKubeAPI(t *testing.T) (*kubeAPI, KubernetesConfig) {
	k := &kubeAPI{objects: map[string]map[string]map[string]any{"pods": {}, "endpoints": {}, "services": {}}, rv: 100, oldest: 0}
	k.cond = sync.NewCond(&k.mu)
	k.srv = httptest.NewTLSServer(http.HandlerFunc(k.serve))
	t.Cleanup(func() {
		k.mu.Lock()
		k.closed = true
		k.cond.Broadcast()
		k.mu.Unlock()
		k.srv.Close()
	})
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k.srv.Certificate().Raw}), 0o600)
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte("sa-token\n"), 0o600)
	var cfg KubernetesConfig
	cfg.APIServer = k.srv.URL
	cfg.BearerTokenFile = tok
	cfg.TLSConfig.CAFile = ca
	return k, cfg
}

// put adds or changes an object; del deletes it.
func (k *kubeAPI) put(resource string, obj map[string]any) { k.change(resource, "", obj) }

func (k *kubeAPI) del(resource, ns, name string) {
	k.change(resource, "DELETED", map[string]any{"metadata": map[string]any{"namespace": ns, "name": name}})
}

func (k *kubeAPI) change(resource, typ string, obj map[string]any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.rv++
	md := obj["metadata"].(map[string]any)
	md["resourceVersion"] = strconv.Itoa(k.rv)
	key := md["namespace"].(string) + "/" + md["name"].(string)
	switch {
	case typ == "DELETED":
		if old := k.objects[resource][key]; old != nil {
			obj = old
			obj["metadata"].(map[string]any)["resourceVersion"] = strconv.Itoa(k.rv)
		}
		delete(k.objects[resource], key)
	case k.objects[resource][key] != nil:
		typ = "MODIFIED"
		k.objects[resource][key] = obj
	default:
		typ = "ADDED"
		k.objects[resource][key] = obj
	}
	k.events = append(k.events, kubeEvent{rv: k.rv, resource: resource, typ: typ, obj: obj})
	k.cond.Broadcast()
}

// compact forgets the event history up to now and ends the open watches:
// the client's next watch, from a version now too old, gets 410 and must
// list again.
func (k *kubeAPI) compact() {
	k.mu.Lock()
	k.oldest = k.rv + 1
	k.events = nil
	k.kill++
	k.cond.Broadcast()
	k.mu.Unlock()
}

func (k *kubeAPI) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer sa-token" {
		k.mu.Lock()
		k.denied++
		k.cond.Broadcast()
		k.mu.Unlock()
		w.WriteHeader(401)
		fmt.Fprint(w, `{"kind":"Status","code":401,"message":"Unauthorized"}`)
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var ns, resource string
	switch {
	case len(parts) == 3 && parts[0] == "api" && parts[1] == "v1":
		resource = parts[2]
	case len(parts) == 5 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces":
		ns, resource = parts[3], parts[4]
	default:
		http.Error(w, "not found", 404)
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	defer k.cond.Broadcast() // for waitRequest
	objs, ok := k.objects[resource]
	if !ok {
		http.Error(w, "not found", 404)
		return
	}
	inNS := func(o map[string]any) bool { return ns == "" || o["metadata"].(map[string]any)["namespace"] == ns }
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("watch") != "1" {
		k.lists++
		items := []map[string]any{}
		for _, o := range objs {
			if inNS(o) {
				items = append(items, o)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"kind": "List", "apiVersion": "v1", "metadata": map[string]any{"resourceVersion": strconv.Itoa(k.rv)}, "items": items})
		return
	}
	k.watches++
	from, _ := strconv.Atoi(r.URL.Query().Get("resourceVersion"))
	flusher := w.(http.Flusher)
	if from < k.oldest {
		json.NewEncoder(w).Encode(map[string]any{"type": "ERROR", "object": map[string]any{"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version"}})
		return
	}
	kill := k.kill
	sent := from
	for !k.closed && k.kill == kill {
		for _, e := range k.events {
			if e.rv > sent && e.resource == resource && inNS(e.obj) {
				json.NewEncoder(w).Encode(map[string]any{"type": e.typ, "object": e.obj})
				sent = e.rv
			}
		}
		// A bookmark now and then, as API servers send with allowWatchBookmarks.
		json.NewEncoder(w).Encode(map[string]any{"type": "BOOKMARK", "object": map[string]any{"kind": "Pod", "metadata": map[string]any{"resourceVersion": strconv.Itoa(k.rv)}}})
		sent = max(sent, k.rv)
		flusher.Flush()
		k.cond.Wait()
	}
}

func pod(ns, name, ip string, ready bool, ports ...string) map[string]any {
	var cports []map[string]any
	for _, p := range ports {
		n, num, _ := strings.Cut(p, ":")
		port, _ := strconv.Atoi(num)
		cports = append(cports, map[string]any{"name": n, "containerPort": port, "protocol": "TCP"})
	}
	readyS := "False"
	if ready {
		readyS = "True"
	}
	return map[string]any{
		"metadata": map[string]any{"namespace": ns, "name": name, "uid": "uid-" + name,
			"labels": map[string]string{"app": "shop", "app.kubernetes.io/version": "2"}, "annotations": map[string]string{"prometheus.io/scrape": "true"},
			"ownerReferences": []map[string]any{{"kind": "ReplicaSet", "name": "shop-7d9", "controller": true}}},
		"spec": map[string]any{"nodeName": "node-1", "containers": []map[string]any{{"name": "app", "image": "shop:2", "ports": cports}, {"name": "sidecar", "image": "envoy"}}},
		"status": map[string]any{"phase": "Running", "podIP": ip, "hostIP": "192.168.1.10",
			"conditions":        []map[string]any{{"type": "Ready", "status": readyS}},
			"containerStatuses": []map[string]any{{"name": "app", "containerID": "containerd://abc"}}},
	}
}

func TestKubernetesPods(t *testing.T) {
	api, cfg := newKubeAPI(t)
	api.put("pods", pod("shop", "shop-1", "10.1.0.1", true, "http:8080"))
	api.put("pods", pod("shop", "shop-pending", "", false, "http:8080"))
	api.put("pods", pod("kube-system", "dns", "10.1.9.9", true, "dns:53"))
	cfg.Role = "pod"
	cfg.Namespaces.Names = []string{"shop"}
	opts, _ := testOptions()
	d, err := NewKubernetes(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := run(t, d)
	// The sidecar has no ports: a target at the pod IP alone.
	s.waitFor(t, "10.1.0.1", "10.1.0.1:8080")
	checkLabels(t, s.target("10.1.0.1:8080"), map[string]string{
		"__meta_kubernetes_namespace": "shop", "__meta_kubernetes_pod_name": "shop-1", "__meta_kubernetes_pod_ip": "10.1.0.1",
		"__meta_kubernetes_pod_ready": "true", "__meta_kubernetes_pod_phase": "Running", "__meta_kubernetes_pod_node_name": "node-1",
		"__meta_kubernetes_pod_host_ip": "192.168.1.10", "__meta_kubernetes_pod_uid": "uid-shop-1",
		"__meta_kubernetes_pod_label_app": "shop", "__meta_kubernetes_pod_labelpresent_app": "true",
		"__meta_kubernetes_pod_label_app_kubernetes_io_version": "2", "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
		"__meta_kubernetes_pod_annotationpresent_prometheus_io_scrape": "true",
		"__meta_kubernetes_pod_controller_kind":                        "ReplicaSet", "__meta_kubernetes_pod_controller_name": "shop-7d9",
		"__meta_kubernetes_pod_container_name": "app", "__meta_kubernetes_pod_container_image": "shop:2",
		"__meta_kubernetes_pod_container_id": "containerd://abc", "__meta_kubernetes_pod_container_port_name": "http",
		"__meta_kubernetes_pod_container_port_number": "8080", "__meta_kubernetes_pod_container_port_protocol": "TCP",
		"__meta_kubernetes_pod_container_init": "false",
	})
	checkLabels(t, s.target("10.1.0.1"), map[string]string{"__meta_kubernetes_pod_container_name": "sidecar", "__meta_kubernetes_pod_container_port_number": ""})

	// Watch events: a new pod, the pending pod gets its IP, a pod goes.
	api.put("pods", pod("shop", "shop-2", "10.1.0.2", false, "http:8080"))
	s.waitFor(t, "10.1.0.1", "10.1.0.1:8080", "10.1.0.2", "10.1.0.2:8080")
	if got := s.target("10.1.0.2:8080")["__meta_kubernetes_pod_ready"]; got != "false" {
		t.Errorf("pod_ready of shop-2 = %q; want false", got)
	}
	api.put("pods", pod("shop", "shop-pending", "10.1.0.3", true, "http:8080"))
	s.waitFor(t, "10.1.0.1", "10.1.0.1:8080", "10.1.0.2", "10.1.0.2:8080", "10.1.0.3", "10.1.0.3:8080")
	api.del("pods", "shop", "shop-1")
	s.waitFor(t, "10.1.0.2", "10.1.0.2:8080", "10.1.0.3", "10.1.0.3:8080")

	// The history is compacted while the agent is not watching: its watch
	// gets 410 Gone, it lists again and sees what changed meanwhile.
	api.compact()
	api.del("pods", "shop", "shop-2")
	api.put("pods", pod("shop", "shop-4", "10.1.0.4", true, "http:8080"))
	s.waitFor(t, "10.1.0.3", "10.1.0.3:8080", "10.1.0.4", "10.1.0.4:8080")
	api.mu.Lock()
	lists := api.lists
	api.mu.Unlock()
	if lists < 2 {
		t.Errorf("%d list requests; want a second list after 410 Gone", lists)
	}
}

func TestKubernetesEndpoints(t *testing.T) {
	api, cfg := newKubeAPI(t)
	api.put("services", map[string]any{"metadata": map[string]any{"namespace": "shop", "name": "web", "labels": map[string]string{"tier": "front"}}})
	api.put("pods", pod("shop", "web-1", "10.1.0.1", true, "http:8080", "metrics:9090"))
	api.put("endpoints", map[string]any{
		"metadata": map[string]any{"namespace": "shop", "name": "web"},
		"subsets": []map[string]any{{
			"addresses":         []map[string]any{{"ip": "10.1.0.1", "nodeName": "node-1", "targetRef": map[string]any{"kind": "Pod", "name": "web-1", "namespace": "shop"}}},
			"notReadyAddresses": []map[string]any{{"ip": "10.1.0.7", "hostname": "web-7"}},
			"ports":             []map[string]any{{"name": "http", "port": 8080, "protocol": "TCP"}},
		}},
	})
	cfg.Role = "endpoints"
	opts, _ := testOptions()
	d, err := NewKubernetes(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := run(t, d)
	// The endpoint addresses, and the pod's port no endpoint port covers.
	s.waitFor(t, "10.1.0.1:8080", "10.1.0.1:9090", "10.1.0.7:8080")
	// The service may be listed after the endpoints: wait for its labels.
	s.waitLabels(t, "10.1.0.1:8080", map[string]string{"__meta_kubernetes_service_name": "web"})
	checkLabels(t, s.target("10.1.0.1:8080"), map[string]string{
		"__meta_kubernetes_namespace": "shop", "__meta_kubernetes_endpoints_name": "web", "__meta_kubernetes_service_name": "web",
		"__meta_kubernetes_service_label_tier": "front", "__meta_kubernetes_endpoint_port_name": "http",
		"__meta_kubernetes_endpoint_port_protocol": "TCP", "__meta_kubernetes_endpoint_ready": "true",
		"__meta_kubernetes_endpoint_node_name": "node-1", "__meta_kubernetes_endpoint_address_target_kind": "Pod",
		"__meta_kubernetes_endpoint_address_target_name": "web-1", "__meta_kubernetes_pod_name": "web-1",
		"__meta_kubernetes_pod_container_name": "app", "__meta_kubernetes_pod_container_port_name": "http",
	})
	checkLabels(t, s.target("10.1.0.7:8080"), map[string]string{"__meta_kubernetes_endpoint_ready": "false", "__meta_kubernetes_endpoint_hostname": "web-7", "__meta_kubernetes_pod_name": ""})
	checkLabels(t, s.target("10.1.0.1:9090"), map[string]string{"__meta_kubernetes_pod_container_port_name": "metrics", "__meta_kubernetes_endpoint_port_name": ""})
	// A service label change reaches the endpoints' targets; the endpoints
	// going removes them.
	api.put("services", map[string]any{"metadata": map[string]any{"namespace": "shop", "name": "web", "labels": map[string]string{"tier": "edge"}}})
	s.waitLabels(t, "10.1.0.1:8080", map[string]string{"__meta_kubernetes_service_label_tier": "edge"})
	api.del("endpoints", "shop", "web")
	s.waitFor(t)
}

func TestKubernetesAuthAndConfig(t *testing.T) {
	api, cfg := newKubeAPI(t)
	api.put("pods", pod("shop", "shop-1", "10.1.0.1", true, "http:8080"))
	os.WriteFile(cfg.BearerTokenFile, []byte("wrong"), 0o600)
	cfg.Role = "pod"
	opts, set := testOptions()
	d, err := NewKubernetes(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	d.backoff = 10 * time.Millisecond
	s := run(t, d)
	deadline := time.Now().Add(30 * time.Second)
	for failures(set, "kubernetes") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a rejected token was not counted as a failure")
		}
		api.waitRequest()
	}
	// The token file is re-read: fixing it lets discovery through.
	os.WriteFile(cfg.BearerTokenFile, []byte("sa-token"), 0o600)
	s.waitFor(t, "10.1.0.1", "10.1.0.1:8080")

	for _, c := range []KubernetesConfig{{Role: "node", APIServer: "https://k"}, {Role: "pod", APIServer: "k8s:443"}} {
		if _, err := NewKubernetes(c, Options{}); err == nil {
			t.Errorf("NewKubernetes(%+v): got nil error", c)
		}
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := NewKubernetes(KubernetesConfig{Role: "pod"}, Options{}); err == nil || !strings.Contains(err.Error(), "api_server") {
		t.Errorf("outside a cluster without api_server: %v; want an error naming api_server", err)
	}
	_ = scrape.Group{}
}
