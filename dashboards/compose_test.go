package main

import (
	"bufio"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/telltale-dev/telltale/collector/collectortest"
	"github.com/telltale-dev/telltale/dashboards/provision"
)

// repoRoot is the repository root seen from this package's folder.
const repoRoot = ".."

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv([]string{"GRAFANA_ADMIN_PASSWORD=s3cret"}),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// flagValue returns the value of -name in a command given as -name=value
// or -name value.
func flagValue(cmd []string, name string) (string, bool) {
	for i, a := range cmd {
		for _, p := range []string{"-" + name, "--" + name} {
			if a == p && i+1 < len(cmd) {
				return cmd[i+1], true
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
		}
	}
	return "", false
}

func mustFlag(t *testing.T, svc types.ServiceConfig, name string) string {
	t.Helper()
	v, ok := flagValue(svc.Command, name)
	if !ok {
		t.Fatalf("service %s: command %q has no -%s", svc.Name, svc.Command, name)
	}
	return v
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return s
}

// dockerStages lists the stage names of the Dockerfile (FROM ... AS name).
func dockerStages(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	defer f.Close()
	re := regexp.MustCompile(`(?i)^FROM\s+\S+\s+AS\s+(\S+)\s*$`)
	stages := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := re.FindStringSubmatch(strings.TrimSpace(sc.Text())); m != nil {
			stages[m[1]] = true
		}
	}
	return stages
}

func volume(svc types.ServiceConfig, target string) (types.ServiceVolumeConfig, bool) {
	for _, v := range svc.Volumes {
		if v.Target == target {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
}

// The compose file loads with the compose spec's own loader, and its
// services, ports and mounts line up with each other, the Dockerfile and
// the generated provisioning.
func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	root, _ := filepath.Abs(repoRoot)

	// Collector, agent and demo are built from this repository's Dockerfile.
	for name, target := range map[string]string{"collector": "collector", "agent": "agent", "demo": "demo"} {
		s := service(t, p, name)
		if s.Build == nil {
			t.Errorf("service %s has no build: section; want it built from the repository", name)
			continue
		}
		if s.Build.Context != root {
			t.Errorf("service %s builds in %s; want the repository root %s", name, s.Build.Context, root)
		}
		df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
		if !dockerStages(t, df)[s.Build.Target] || s.Build.Target != target {
			t.Errorf("service %s builds target %q; want %q, a stage of %s", name, s.Build.Target, target, df)
		}
	}

	// The collector listens on all interfaces of its container, on the port
	// the data source, the agent and the demo use, and publishes it on
	// loopback only.
	col := service(t, p, "collector")
	listen := mustFlag(t, col, "listen")
	host, port, err := net.SplitHostPort(listen)
	if err != nil || host != "0.0.0.0" {
		t.Fatalf("collector -listen=%s; want 0.0.0.0:<port> so other containers reach it", listen)
	}
	published := false
	for _, pc := range col.Ports {
		if pc.Target == mustAtoi(t, port) {
			published = true
			if pc.HostIP != "127.0.0.1" {
				t.Errorf("collector port published on %q; want 127.0.0.1 only (no auth in the compose network)", pc.HostIP)
			}
		}
	}
	if !published {
		t.Errorf("collector port %s is not published", port)
	}
	if _, err := os.Stat(filepath.Join(root, "dashboards", provision.DatasourceFile)); err != nil {
		t.Fatal(err)
	}
	ds := readDatasourceURL(t, filepath.Join(root, "dashboards", provision.DatasourceFile))
	wantURL := "http://collector:" + port
	if ds != wantURL {
		t.Errorf("provisioned data source url %s; want %s (the collector service and its -listen port): regenerate with -datasource.url", ds, wantURL)
	}
	if u := mustFlag(t, service(t, p, "demo"), "collector"); u != wantURL {
		t.Errorf("demo -collector=%s; want %s", u, wantURL)
	}

	// The agent sees the host as agent/README.md says: the host's network
	// (so its network metrics and host name are the host's), process table,
	// and root read-only with /proc and /sys under the -root it reads. On
	// the host's network it reaches the collector at its published port.
	agent := service(t, p, "agent")
	if agent.Pid != "host" || agent.NetworkMode != "host" {
		t.Errorf("agent pid %q, network_mode %q; want host and host", agent.Pid, agent.NetworkMode)
	}
	if u, want := mustFlag(t, agent, "collector"), "http://127.0.0.1:"+port; u != want {
		t.Errorf("agent -collector=%s; want %s, the collector's port published on the host's loopback", u, want)
	}
	rootDir := mustFlag(t, agent, "root")
	for hostPath, target := range map[string]string{"/": rootDir, "/proc": rootDir + "/proc", "/sys": rootDir + "/sys"} {
		v, ok := volume(agent, target)
		if !ok || v.Source != hostPath || !v.ReadOnly || v.Type != types.VolumeTypeBind {
			t.Errorf("agent mount of %s: got %+v; want host %s bound read-only at %s", hostPath, v, hostPath, target)
		}
	}
	if v, _ := volume(agent, rootDir); v.Bind == nil || v.Bind.Propagation != types.PropagationRSlave {
		t.Errorf("agent mount of / at %s: propagation %+v; want rslave, so filesystems the host mounts later are seen", rootDir, v.Bind)
	}

	// Healthchecks: the collector probes its own /readyz (its image has no
	// shell or curl) on its -listen port; Grafana its /api/health; the
	// others start once the collector is healthy.
	hc := col.HealthCheck
	if hc == nil || len(hc.Test) != 4 || hc.Test[0] != "CMD" || hc.Test[2] != "probe" || hc.Test[3] != "http://127.0.0.1:"+port+"/readyz" {
		t.Errorf("collector healthcheck %+v; want [CMD <collector> probe http://127.0.0.1:%s/readyz]", hc, port)
	}
	if hc := service(t, p, "grafana").HealthCheck; hc == nil || len(hc.Test) < 2 || !strings.HasSuffix(hc.Test[len(hc.Test)-1], ":3000/api/health") {
		t.Errorf("grafana healthcheck %+v; want a GET of :3000/api/health", hc)
	}
	for _, name := range []string{"agent", "demo", "grafana"} {
		if d, ok := service(t, p, name).DependsOn["collector"]; !ok || d.Condition != types.ServiceConditionHealthy {
			t.Errorf("%s depends_on collector %+v; want condition service_healthy", name, d)
		}
	}
	if spool := mustFlag(t, agent, "spool-dir"); !mountedAt(agent, spool) {
		t.Errorf("agent -spool-dir=%s is not on a volume: the spool would not survive a restart", spool)
	}
	if data := mustFlag(t, col, "data"); !mountedAt(col, data) {
		t.Errorf("collector -data=%s is not on a volume", data)
	}

	// Grafana: OSS 12, provisioning mounted from the generated folders, the
	// dashboards JSON where the provider looks, a login or anonymous access.
	g := service(t, p, "grafana")
	if !strings.HasPrefix(g.Image, "grafana/grafana-oss:12.") {
		t.Errorf("grafana image %q; want grafana/grafana-oss:12.x", g.Image)
	}
	providerPath := readProviderPath(t, filepath.Join(root, "dashboards", provision.ProviderFile))
	for target, src := range map[string]string{
		"/etc/grafana/provisioning/datasources": filepath.Dir(provision.DatasourceFile),
		"/etc/grafana/provisioning/dashboards":  filepath.Dir(provision.ProviderFile),
		providerPath:                            provision.JSONDir,
	} {
		v, ok := volume(g, target)
		want := filepath.Join(root, "dashboards", src)
		if !ok || v.Source != want || !v.ReadOnly {
			t.Errorf("grafana mount at %s: got %+v; want %s read-only", target, v, want)
		}
	}
	if home := g.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home == nil || !strings.HasPrefix(*home, providerPath+"/") {
		t.Errorf("grafana home dashboard %v; want a file under %s", home, providerPath)
	} else if _, err := os.Stat(filepath.Join(root, "dashboards", provision.JSONDir, filepath.Base(*home))); err != nil {
		t.Errorf("grafana home dashboard %s is not generated: %v", *home, err)
	}
	if pw := g.Environment["GF_SECURITY_ADMIN_PASSWORD"]; pw == nil || *pw != "s3cret" {
		t.Errorf("GF_SECURITY_ADMIN_PASSWORD %v; want it from $GRAFANA_ADMIN_PASSWORD", pw)
	}
	if anon := g.Environment["GF_AUTH_ANONYMOUS_ENABLED"]; anon == nil || *anon != "true" {
		t.Errorf("GF_AUTH_ANONYMOUS_ENABLED %v; want true", anon)
	}
	if _, ok := g.Environment[provision.TokenEnv]; !ok {
		t.Errorf("grafana has no %s in its environment; the data source's Authorization header expands it", provision.TokenEnv)
	}
	grafanaPort := false
	for _, pc := range g.Ports {
		grafanaPort = grafanaPort || pc.Target == 3000
	}
	if !grafanaPort {
		t.Error("grafana port 3000 is not published")
	}

	// Every bind-mounted path of the repository exists.
	for _, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind || !strings.HasPrefix(v.Source, root+string(filepath.Separator)) {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s, which does not exist in the repository", s.Name, v.Source)
			}
		}
	}
}

func mountedAt(s types.ServiceConfig, dir string) bool {
	for _, v := range s.Volumes {
		if v.Target == dir || strings.HasPrefix(dir, v.Target+"/") {
			return true
		}
	}
	return false
}

func mustAtoi(t *testing.T, s string) uint32 {
	t.Helper()
	var n uint32
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("port %q is not a number", s)
		}
		n = n*10 + uint32(c-'0')
	}
	return n
}

func readDatasourceURL(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Datasources []struct {
			UID string `yaml:"uid"`
			URL string `yaml:"url"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil || len(c.Datasources) != 1 {
		t.Fatalf("%s: %v; want one data source", path, err)
	}
	if _, err := url.Parse(c.Datasources[0].URL); err != nil {
		t.Fatal(err)
	}
	return c.Datasources[0].URL
}

func readProviderPath(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil || len(c.Providers) != 1 {
		t.Fatalf("%s: %v; want one provider", path, err)
	}
	return c.Providers[0].Options.Path
}

// The flags the compose file passes exist: the real collector parses them
// (-version exits after parsing), the demo checks them with -dry-run.
func TestComposeCommandsParse(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the collector and the demo")
	}
	p := loadCompose(t)
	col := service(t, p, "collector")
	out, err := exec.CommandContext(t.Context(), collectortest.Binary(t), append(col.Command, "-version")...).CombinedOutput()
	if err != nil {
		t.Errorf("collector %q -version: %v\n%s", col.Command, err, out)
	}

	demo := service(t, p, "demo")
	bin := collectortest.Build(t, "github.com/telltale-dev/telltale/instrument/demo")
	if out, err := exec.CommandContext(t.Context(), bin, append(demo.Command, "-dry-run")...).CombinedOutput(); err != nil {
		t.Errorf("demo %q -dry-run: %v\n%s", demo.Command, err, out)
	}

	// The agent's flags, with -root pointing at this machine's / instead of
	// the container's /host.
	agent := service(t, p, "agent")
	args := append([]string{}, agent.Command...)
	for i, a := range args {
		if strings.HasPrefix(a, "-root=") {
			args[i] = "-root=/"
		}
	}
	agentBin := collectortest.Build(t, "github.com/telltale-dev/telltale/agent")
	if out, err := exec.CommandContext(t.Context(), agentBin, append(args, "-check-config")...).CombinedOutput(); err != nil {
		t.Errorf("agent %q -check-config: %v\n%s", agent.Command, err, out)
	}

	// The collector's healthcheck command works against a real collector
	// (ready: exit 0) and fails on a URL that does not answer 2xx.
	in := collectortest.Start(t)
	probe := col.HealthCheck.Test[2:]
	ok := append([]string{probe[0]}, in.URL+"/readyz")
	if out, err := exec.CommandContext(t.Context(), collectortest.Binary(t), ok...).CombinedOutput(); err != nil {
		t.Errorf("collector %q: %v\n%s", ok, err, out)
	}
	bad := append([]string{probe[0]}, in.URL+"/no-such-page")
	if out, err := exec.CommandContext(t.Context(), collectortest.Binary(t), bad...).CombinedOutput(); err == nil || !strings.Contains(string(out), "404") {
		t.Errorf("collector %q: err %v, output %q; want a failure naming the 404", bad, err, out)
	}
}

// The Docker build context leaves out the git history and local data: a
// collector's data directory or an agent's spool in the working tree would
// otherwise be sent to the daemon and copied into the build stage.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	entries := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			entries[l] = true
		}
	}
	for _, want := range []string{".git", "**/telltale-data", "**/telltale-agent-spool"} {
		if !entries[want] {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
	// The defaults it must cover are the binaries' own.
	for _, f := range []struct{ file, flag string }{
		{"collector/flags.go", `"data", "./telltale-data"`},
		{"agent/config.go", `"spool-dir", "telltale-agent-spool"`},
	} {
		src, err := os.ReadFile(filepath.Join(repoRoot, f.file))
		if err != nil || !strings.Contains(string(src), f.flag) {
			t.Errorf("%s does not define %s: update .dockerignore with the new default", f.file, f.flag)
		}
	}
}
