package discovery

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/telltale-dev/telltale/agent/scrape"
	"github.com/telltale-dev/telltale/retry"
	"github.com/telltale-dev/telltale/secret"
)

// KubernetesConfig is a kubernetes_sd_configs entry (roles pod and
// endpoints).
type KubernetesConfig struct {
	// Role is pod or endpoints.
	Role string `yaml:"role"`
	// APIServer is the API server's URL. Empty means in-cluster: the
	// KUBERNETES_SERVICE_HOST/PORT environment, the service account's token
	// and CA under /var/run/secrets/kubernetes.io/serviceaccount.
	APIServer string `yaml:"api_server"`
	// Namespaces limits discovery; none means all.
	Namespaces struct {
		OwnNamespace bool     `yaml:"own_namespace"`
		Names        []string `yaml:"names"`
	} `yaml:"namespaces"`
	// Selectors are label and field selectors per role.
	Selectors []struct {
		Role  string `yaml:"role"`
		Label string `yaml:"label"`
		Field string `yaml:"field"`
	} `yaml:"selectors"`
	// BearerTokenFile holds the token (re-read for every request, so a
	// rotated token is picked up). In-cluster it defaults to the service
	// account's.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// TLSConfig: the CA of the API server's certificate.
	TLSConfig struct {
		CAFile             string `yaml:"ca_file"`
		InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	} `yaml:"tls_config"`
}

// serviceAccountDir is where Kubernetes mounts a pod's service account.
const serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Kubernetes is kubernetes_sd_configs for the pod and endpoints roles. It
// lists and then watches (GET ...?watch=1&resourceVersion=) pods, and for
// the endpoints role also endpoints and services, through the API server's
// REST API, and keeps one group per pod (Source pod/<ns>/<name>) or per
// Endpoints object (endpoints/<ns>/<name>) with Prometheus'
// __meta_kubernetes_* labels. A watch that ends is resumed from its last
// resourceVersion; one that is too old (410 Gone) lists again.
type Kubernetes struct {
	cfg        KubernetesConfig
	opts       Options
	server     string
	client     *http.Client
	tokenFile  string
	namespaces []string // "" means all
	refresh    *refreshState
	// backoff bounds the wait before a failed list or watch is retried; a
	// variable for tests.
	backoff time.Duration
}

// NewKubernetes checks cfg and, without api_server, reads the in-cluster
// settings.
func NewKubernetes(cfg KubernetesConfig, opts Options) (*Kubernetes, error) {
	if cfg.Role != "pod" && cfg.Role != "endpoints" {
		return nil, fmt.Errorf("kubernetes_sd_configs: role %q: this agent supports pod and endpoints", cfg.Role)
	}
	for _, s := range cfg.Selectors {
		if s.Role != "pod" && s.Role != "endpoints" && s.Role != "service" {
			return nil, fmt.Errorf("kubernetes_sd_configs: selector role %q: use pod, endpoints or service", s.Role)
		}
	}
	d := &Kubernetes{cfg: cfg, tokenFile: cfg.BearerTokenFile, backoff: 30 * time.Second}
	caFile := cfg.TLSConfig.CAFile
	if cfg.APIServer == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("kubernetes_sd_configs: no api_server and not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset): set api_server")
		}
		d.server = "https://" + net.JoinHostPort(host, port)
		if d.tokenFile == "" {
			d.tokenFile = serviceAccountDir + "/token"
		}
		if caFile == "" {
			caFile = serviceAccountDir + "/ca.crt"
		}
	} else {
		u, err := url.Parse(cfg.APIServer)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("kubernetes_sd_configs: api_server %q is not an absolute http(s) URL", cfg.APIServer)
		}
		d.server = strings.TrimSuffix(cfg.APIServer, "/")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.TLSConfig.InsecureSkipVerify}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("kubernetes_sd_configs: tls_config.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kubernetes_sd_configs: %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	d.client = &http.Client{Transport: tr}
	if d.tokenFile != "" {
		if _, err := secret.Read(d.tokenFile, "kubernetes_sd_configs: bearer_token_file", "the service account token"); err != nil {
			return nil, err
		}
	}
	d.namespaces = slices.Clone(cfg.Namespaces.Names)
	if cfg.Namespaces.OwnNamespace {
		ns, err := os.ReadFile(serviceAccountDir + "/namespace")
		if err != nil {
			return nil, fmt.Errorf("kubernetes_sd_configs: namespaces.own_namespace: %w", err)
		}
		d.namespaces = append(d.namespaces, strings.TrimSpace(string(ns)))
	}
	if len(d.namespaces) == 0 {
		d.namespaces = []string{""}
	}
	d.opts = opts.withDefaults("kubernetes")
	d.refresh = newRefreshState(d.opts, "kubernetes")
	return d, nil
}

// The API objects, the fields used.
type (
	k8sMeta struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		UID             string            `json:"uid"`
		ResourceVersion string            `json:"resourceVersion"`
		Labels          map[string]string `json:"labels"`
		Annotations     map[string]string `json:"annotations"`
		OwnerReferences []struct {
			Kind       string `json:"kind"`
			Name       string `json:"name"`
			Controller *bool  `json:"controller"`
		} `json:"ownerReferences"`
	}
	k8sContainer struct {
		Name  string `json:"name"`
		Image string `json:"image"`
		Ports []struct {
			Name          string `json:"name"`
			ContainerPort int32  `json:"containerPort"`
			Protocol      string `json:"protocol"`
		} `json:"ports"`
	}
	k8sContainerStatus struct {
		Name        string `json:"name"`
		ContainerID string `json:"containerID"`
	}
	k8sPod struct {
		Metadata k8sMeta `json:"metadata"`
		Spec     struct {
			NodeName       string         `json:"nodeName"`
			Containers     []k8sContainer `json:"containers"`
			InitContainers []k8sContainer `json:"initContainers"`
		} `json:"spec"`
		Status struct {
			Phase      string `json:"phase"`
			PodIP      string `json:"podIP"`
			HostIP     string `json:"hostIP"`
			Conditions []struct {
				Type   string `json:"type"`
				Status string `json:"status"`
			} `json:"conditions"`
			ContainerStatuses     []k8sContainerStatus `json:"containerStatuses"`
			InitContainerStatuses []k8sContainerStatus `json:"initContainerStatuses"`
		} `json:"status"`
	}
	k8sAddress struct {
		IP        string  `json:"ip"`
		Hostname  string  `json:"hostname"`
		NodeName  *string `json:"nodeName"`
		TargetRef *struct {
			Kind      string `json:"kind"`
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"targetRef"`
	}
	k8sEndpoints struct {
		Metadata k8sMeta `json:"metadata"`
		Subsets  []struct {
			Addresses         []k8sAddress `json:"addresses"`
			NotReadyAddresses []k8sAddress `json:"notReadyAddresses"`
			Ports             []struct {
				Name     string `json:"name"`
				Port     int32  `json:"port"`
				Protocol string `json:"protocol"`
			} `json:"ports"`
		} `json:"subsets"`
	}
	k8sService struct {
		Metadata k8sMeta `json:"metadata"`
	}
	k8sObject struct {
		Metadata k8sMeta `json:"metadata"`
	}
)

// k8sEvent is what a list or watch reports to Run: a full list of a
// resource in a namespace (sync), or one change.
type k8sEvent struct {
	resource, namespace string
	sync                bool
	items               []json.RawMessage // for sync
	typ                 string            // ADDED, MODIFIED, DELETED
	obj                 json.RawMessage
}

// k8sStore holds the objects of one resource by namespace/name.
type k8sStore map[string]json.RawMessage

// Run lists and watches until ctx ends.
func (d *Kubernetes) Run(ctx context.Context, update func([]scrape.Group)) {
	resources := []string{"pods"}
	if d.cfg.Role == "endpoints" {
		resources = []string{"endpoints", "services", "pods"}
	}
	events := make(chan k8sEvent)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, ns := range d.namespaces {
		for _, r := range resources {
			wg.Go(func() { d.watch(ctx, r, ns, events) })
		}
	}
	stores := map[string]k8sStore{}
	for _, r := range resources {
		stores[r] = k8sStore{}
	}
	last := map[string]string{} // source -> rendered group, to send only changes
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			st := stores[ev.resource]
			if ev.sync {
				for k := range st {
					if ns, _, _ := strings.Cut(k, "/"); ev.namespace == "" || ns == ev.namespace {
						delete(st, k)
					}
				}
				for _, raw := range ev.items {
					var o k8sObject
					if json.Unmarshal(raw, &o) == nil {
						st[o.Metadata.Namespace+"/"+o.Metadata.Name] = raw
					}
				}
			} else {
				var o k8sObject
				if json.Unmarshal(ev.obj, &o) != nil {
					continue
				}
				k := o.Metadata.Namespace + "/" + o.Metadata.Name
				if ev.typ == "DELETED" {
					delete(st, k)
				} else {
					st[k] = ev.obj
				}
			}
			if gs := d.changed(stores, last); len(gs) > 0 {
				update(gs)
			}
		}
	}
}

// changed rebuilds the groups from the stores and returns those that differ
// from last (removed ones as empty groups), updating last.
func (d *Kubernetes) changed(stores map[string]k8sStore, last map[string]string) []scrape.Group {
	var gs []scrape.Group
	if d.cfg.Role == "pod" {
		for _, raw := range stores["pods"] {
			var p k8sPod
			if json.Unmarshal(raw, &p) == nil {
				gs = append(gs, podGroup(&p))
			}
		}
	} else {
		pods := map[string]*k8sPod{}
		for k, raw := range stores["pods"] {
			var p k8sPod
			if json.Unmarshal(raw, &p) == nil {
				pods[k] = &p
			}
		}
		for k, raw := range stores["endpoints"] {
			var e k8sEndpoints
			if json.Unmarshal(raw, &e) != nil {
				continue
			}
			var svc *k8sService
			if sraw, ok := stores["services"][k]; ok {
				var s k8sService
				if json.Unmarshal(sraw, &s) == nil {
					svc = &s
				}
			}
			gs = append(gs, endpointsGroup(&e, svc, pods))
		}
	}
	var out []scrape.Group
	now := map[string]bool{}
	for _, g := range gs {
		now[g.Source] = true
		r := renderGroup(g)
		if last[g.Source] != r {
			last[g.Source] = r
			out = append(out, g)
		}
	}
	for src := range last {
		if !now[src] {
			delete(last, src)
			out = append(out, scrape.Group{Source: src})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Source < out[j].Source })
	return out
}

// renderGroup is a canonical text of a group, to detect changes.
func renderGroup(g scrape.Group) string {
	b, _ := json.Marshal(struct {
		T []map[string]string
		L map[string]string
	}{g.Targets, g.Labels}) // encoding/json sorts map keys
	return string(b)
}

// watch lists resource in namespace ("" for all) and watches it from the
// list's resourceVersion, forever: a watch that ends resumes, one whose
// version is gone (410) lists again, errors wait and retry.
func (d *Kubernetes) watch(ctx context.Context, resource, namespace string, out chan<- k8sEvent) {
	wait := min(time.Second, d.backoff)
	for ctx.Err() == nil {
		version, err := d.list(ctx, resource, namespace, out)
		for err == nil && ctx.Err() == nil {
			version, err = d.watchFrom(ctx, resource, namespace, version, out)
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errGone) {
			continue // list again at once
		}
		d.refresh.result(err)
		if retry.Sleep(ctx, wait) != nil {
			return
		}
		wait = min(2*wait, d.backoff)
	}
}

var errGone = errors.New("resource version too old (410 Gone)")

// path is the API path of resource in namespace.
func (d *Kubernetes) path(resource, namespace string) string {
	if namespace == "" {
		return "/api/v1/" + resource
	}
	return "/api/v1/namespaces/" + url.PathEscape(namespace) + "/" + resource
}

func (d *Kubernetes) request(ctx context.Context, resource, namespace string, q url.Values) (*http.Response, error) {
	role := map[string]string{"pods": "pod", "endpoints": "endpoints", "services": "service"}[resource]
	for _, s := range d.cfg.Selectors {
		if s.Role == role {
			if s.Label != "" {
				q.Set("labelSelector", s.Label)
			}
			if s.Field != "" {
				q.Set("fieldSelector", s.Field)
			}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.server+d.path(resource, namespace)+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", d.opts.UserAgent)
	if d.tokenFile != "" {
		// Read per request: the service account token rotates.
		tok, err := secret.Read(d.tokenFile, "kubernetes_sd: bearer_token_file", "the service account token")
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kubernetes_sd %s: %w", d.server, err)
	}
	if resp.StatusCode == http.StatusGone {
		resp.Body.Close()
		return nil, errGone
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return nil, fmt.Errorf("kubernetes_sd %s%s: %s: %s", d.server, d.path(resource, namespace), resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, nil
}

// list GETs the resource and sends it as a sync event; it returns the
// list's resourceVersion.
func (d *Kubernetes) list(ctx context.Context, resource, namespace string, out chan<- k8sEvent) (string, error) {
	resp, err := d.request(ctx, resource, namespace, url.Values{})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var l struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(&l); err != nil {
		return "", fmt.Errorf("kubernetes_sd: cannot decode the %s list: %w", resource, err)
	}
	d.refresh.result(nil)
	select {
	case out <- k8sEvent{resource: resource, namespace: namespace, sync: true, items: l.Items}:
	case <-ctx.Done():
	}
	return l.Metadata.ResourceVersion, nil
}

// watchFrom streams the changes after version until the server ends the
// watch; it returns the last version seen.
func (d *Kubernetes) watchFrom(ctx context.Context, resource, namespace, version string, out chan<- k8sEvent) (string, error) {
	q := url.Values{"watch": {"1"}, "resourceVersion": {version}, "allowWatchBookmarks": {"true"},
		"timeoutSeconds": {strconv.Itoa(300 + int(time.Now().UnixNano()%300))}}
	resp, err := d.request(ctx, resource, namespace, q)
	if err != nil {
		return version, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(bufio.NewReader(resp.Body))
	for {
		var ev struct {
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return version, nil // the server ended the watch: resume
			}
			return version, fmt.Errorf("kubernetes_sd: %s watch: %w", resource, err)
		}
		switch ev.Type {
		case "ERROR":
			var st struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			_ = json.Unmarshal(ev.Object, &st)
			if st.Code == http.StatusGone {
				return version, errGone
			}
			return version, fmt.Errorf("kubernetes_sd: %s watch error %d: %s", resource, st.Code, st.Message)
		case "BOOKMARK", "ADDED", "MODIFIED", "DELETED":
			var o k8sObject
			if err := json.Unmarshal(ev.Object, &o); err != nil {
				return version, fmt.Errorf("kubernetes_sd: %s watch: bad object: %w", resource, err)
			}
			if o.Metadata.ResourceVersion != "" {
				version = o.Metadata.ResourceVersion
			}
			if ev.Type == "BOOKMARK" {
				continue
			}
			select {
			case out <- k8sEvent{resource: resource, namespace: namespace, typ: ev.Type, obj: ev.Object}:
			case <-ctx.Done():
				return version, nil
			}
		}
	}
}

// addMetaLabels adds Prometheus' <role>_name, _label_*, _labelpresent_*,
// _annotation_* and _annotationpresent_* labels of an object.
func addMetaLabels(ls map[string]string, m *k8sMeta, role string) {
	p := "__meta_kubernetes_" + role
	ls[p+"_name"] = m.Name
	for k, v := range m.Labels {
		ls[p+"_label_"+sanitize(k)] = v
		ls[p+"_labelpresent_"+sanitize(k)] = "true"
	}
	for k, v := range m.Annotations {
		ls[p+"_annotation_"+sanitize(k)] = v
		ls[p+"_annotationpresent_"+sanitize(k)] = "true"
	}
}

// podLabels are the pod-level labels of Prometheus' pod role.
func podLabels(p *k8sPod) map[string]string {
	ready := "unknown"
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			ready = strings.ToLower(c.Status)
		}
	}
	ls := map[string]string{
		"__meta_kubernetes_pod_ip": p.Status.PodIP, "__meta_kubernetes_pod_ready": ready,
		"__meta_kubernetes_pod_phase": p.Status.Phase, "__meta_kubernetes_pod_node_name": p.Spec.NodeName,
		"__meta_kubernetes_pod_host_ip": p.Status.HostIP, "__meta_kubernetes_pod_uid": p.Metadata.UID,
	}
	addMetaLabels(ls, &p.Metadata, "pod")
	for _, o := range p.Metadata.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			if o.Kind != "" {
				ls["__meta_kubernetes_pod_controller_kind"] = o.Kind
			}
			if o.Name != "" {
				ls["__meta_kubernetes_pod_controller_name"] = o.Name
			}
			break
		}
	}
	return ls
}

func containerID(statuses []k8sContainerStatus, name string) string {
	for _, s := range statuses {
		if s.Name == name {
			return s.ContainerID
		}
	}
	return ""
}

// podGroup is Prometheus' buildPod: one target per container port, or one
// per container without ports (address: the pod IP).
func podGroup(p *k8sPod) scrape.Group {
	g := scrape.Group{Source: "pod/" + p.Metadata.Namespace + "/" + p.Metadata.Name}
	if p.Status.PodIP == "" {
		return g
	}
	g.Labels = podLabels(p)
	g.Labels["__meta_kubernetes_namespace"] = p.Metadata.Namespace
	containers := append(slices.Clone(p.Spec.Containers), p.Spec.InitContainers...)
	for i, c := range containers {
		isInit := i >= len(p.Spec.Containers)
		statuses := p.Status.ContainerStatuses
		if isInit {
			statuses = p.Status.InitContainerStatuses
		}
		id := containerID(statuses, c.Name)
		if len(c.Ports) == 0 {
			g.Targets = append(g.Targets, map[string]string{
				"__address__": p.Status.PodIP, "__meta_kubernetes_pod_container_name": c.Name,
				"__meta_kubernetes_pod_container_id": id, "__meta_kubernetes_pod_container_image": c.Image,
				"__meta_kubernetes_pod_container_init": strconv.FormatBool(isInit),
			})
			continue
		}
		for _, port := range c.Ports {
			ps := strconv.Itoa(int(port.ContainerPort))
			g.Targets = append(g.Targets, map[string]string{
				"__address__": net.JoinHostPort(p.Status.PodIP, ps), "__meta_kubernetes_pod_container_name": c.Name,
				"__meta_kubernetes_pod_container_id": id, "__meta_kubernetes_pod_container_image": c.Image,
				"__meta_kubernetes_pod_container_port_number": ps, "__meta_kubernetes_pod_container_port_name": port.Name,
				"__meta_kubernetes_pod_container_port_protocol": port.Protocol, "__meta_kubernetes_pod_container_init": strconv.FormatBool(isInit),
			})
		}
	}
	return g
}

// endpointsGroup is Prometheus' buildEndpoints: one target per address and
// port (ready and not ready), with the service's and the backing pod's
// labels, plus targets for the pods' container ports no endpoint port
// covers.
func endpointsGroup(e *k8sEndpoints, svc *k8sService, pods map[string]*k8sPod) scrape.Group {
	g := scrape.Group{Source: "endpoints/" + e.Metadata.Namespace + "/" + e.Metadata.Name,
		Labels: map[string]string{"__meta_kubernetes_namespace": e.Metadata.Namespace}}
	if svc != nil {
		addMetaLabels(g.Labels, &svc.Metadata, "service")
	}
	addMetaLabels(g.Labels, &e.Metadata, "endpoints")
	type seenPod struct {
		pod   *k8sPod
		ports []int32
	}
	seen := map[string]*seenPod{}
	var order []string
	add := func(addr k8sAddress, name string, port int32, protocol, ready string) {
		t := map[string]string{
			"__address__":                              net.JoinHostPort(addr.IP, strconv.Itoa(int(port))),
			"__meta_kubernetes_endpoint_port_name":     name,
			"__meta_kubernetes_endpoint_port_protocol": protocol,
			"__meta_kubernetes_endpoint_ready":         ready,
		}
		if addr.TargetRef != nil {
			t["__meta_kubernetes_endpoint_address_target_kind"] = addr.TargetRef.Kind
			t["__meta_kubernetes_endpoint_address_target_name"] = addr.TargetRef.Name
		}
		if addr.NodeName != nil {
			t["__meta_kubernetes_endpoint_node_name"] = *addr.NodeName
		}
		if addr.Hostname != "" {
			t["__meta_kubernetes_endpoint_hostname"] = addr.Hostname
		}
		var pod *k8sPod
		if addr.TargetRef != nil && addr.TargetRef.Kind == "Pod" {
			pod = pods[addr.TargetRef.Namespace+"/"+addr.TargetRef.Name]
		}
		if pod == nil {
			g.Targets = append(g.Targets, t)
			return
		}
		k := pod.Metadata.Namespace + "/" + pod.Metadata.Name
		sp := seen[k]
		if sp == nil {
			sp = &seenPod{pod: pod}
			seen[k] = sp
			order = append(order, k)
		}
		copyLabels(t, podLabels(pod))
		containers := append(slices.Clone(pod.Spec.Containers), pod.Spec.InitContainers...)
	found:
		for i, c := range containers {
			for _, cp := range c.Ports {
				if cp.ContainerPort != port {
					continue
				}
				t["__meta_kubernetes_pod_container_name"] = c.Name
				t["__meta_kubernetes_pod_container_image"] = c.Image
				t["__meta_kubernetes_pod_container_port_name"] = cp.Name
				t["__meta_kubernetes_pod_container_port_number"] = strconv.Itoa(int(port))
				t["__meta_kubernetes_pod_container_port_protocol"] = protocol
				t["__meta_kubernetes_pod_container_init"] = strconv.FormatBool(i >= len(pod.Spec.Containers))
				break found
			}
		}
		sp.ports = append(sp.ports, port)
		g.Targets = append(g.Targets, t)
	}
	for _, ss := range e.Subsets {
		for _, p := range ss.Ports {
			for _, a := range ss.Addresses {
				add(a, p.Name, p.Port, p.Protocol, "true")
			}
			for _, a := range ss.NotReadyAddresses {
				add(a, p.Name, p.Port, p.Protocol, "false")
			}
		}
	}
	for _, k := range order {
		sp := seen[k]
		pod := sp.pod
		if pod.Status.PodIP == "" {
			continue
		}
		containers := append(slices.Clone(pod.Spec.Containers), pod.Spec.InitContainers...)
		for i, c := range containers {
			for _, cp := range c.Ports {
				if slices.Contains(sp.ports, cp.ContainerPort) {
					continue
				}
				ps := strconv.Itoa(int(cp.ContainerPort))
				t := map[string]string{
					"__address__": net.JoinHostPort(pod.Status.PodIP, ps), "__meta_kubernetes_pod_container_name": c.Name,
					"__meta_kubernetes_pod_container_image": c.Image, "__meta_kubernetes_pod_container_port_name": cp.Name,
					"__meta_kubernetes_pod_container_port_number": ps, "__meta_kubernetes_pod_container_port_protocol": cp.Protocol,
					"__meta_kubernetes_pod_container_init": strconv.FormatBool(i >= len(pod.Spec.Containers)),
				}
				copyLabels(t, podLabels(pod))
				g.Targets = append(g.Targets, t)
			}
		}
	}
	return g
}
