package provision

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/telltale-dev/telltale/dashboards/board"
)

// DatasourceConfig mirrors Grafana's data source provisioning file, the
// fields Telltale sets.
type DatasourceConfig struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name      string `yaml:"name"`
		UID       string `yaml:"uid"`
		Type      string `yaml:"type"`
		Access    string `yaml:"access"`
		URL       string `yaml:"url"`
		IsDefault bool   `yaml:"isDefault"`
		Editable  bool   `yaml:"editable"`
		JSONData  struct {
			HTTPMethod      string `yaml:"httpMethod"`
			TimeInterval    string `yaml:"timeInterval"`
			PrometheusType  string `yaml:"prometheusType"`
			HTTPHeaderName1 string `yaml:"httpHeaderName1"`
		} `yaml:"jsonData"`
		SecureJSONData struct {
			HTTPHeaderValue1 string `yaml:"httpHeaderValue1"`
		} `yaml:"secureJsonData"`
	} `yaml:"datasources"`
}

// ProviderConfig mirrors Grafana's dashboard provider file.
type ProviderConfig struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name                  string `yaml:"name"`
		OrgID                 int    `yaml:"orgId"`
		Type                  string `yaml:"type"`
		Folder                string `yaml:"folder"`
		FolderUID             string `yaml:"folderUid"`
		DisableDeletion       bool   `yaml:"disableDeletion"`
		AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
		UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `yaml:"path"`
			FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

func decodeStrict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("cannot decode:\n%s\n%v", b, err)
	}
}

func mustFiles(t *testing.T, opts Options) map[string][]byte {
	t.Helper()
	bs, err := board.All(board.Options{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := Files(bs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestDatasourceFile(t *testing.T) {
	files := mustFiles(t, Options{DatasourceURL: "https://collector.example.com:9470"})
	var c DatasourceConfig
	decodeStrict(t, files[DatasourceFile], &c)
	if c.APIVersion != 1 || len(c.Datasources) != 1 {
		t.Fatalf("got apiVersion %d with %d data sources; want 1 and 1", c.APIVersion, len(c.Datasources))
	}
	ds := c.Datasources[0]
	got := []string{ds.Name, ds.UID, ds.Type, ds.Access, ds.URL, ds.JSONData.HTTPMethod, ds.JSONData.TimeInterval, ds.JSONData.HTTPHeaderName1, ds.SecureJSONData.HTTPHeaderValue1}
	want := []string{"Telltale", "telltale", "prometheus", "proxy", "https://collector.example.com:9470", "POST", "10s", "Authorization", "Bearer ${TELLTALE_READ_TOKEN}"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %q; want %q", got, want)
	}
	if !ds.IsDefault || ds.Editable {
		t.Errorf("got isDefault=%v editable=%v; want the default, not editable", ds.IsDefault, ds.Editable)
	}
}

func TestProviderFile(t *testing.T) {
	files := mustFiles(t, Options{})
	var c ProviderConfig
	decodeStrict(t, files[ProviderFile], &c)
	if len(c.Providers) != 1 {
		t.Fatalf("got %d providers; want 1", len(c.Providers))
	}
	p := c.Providers[0]
	if p.Type != "file" || p.Folder != FolderTitle || p.FolderUID != FolderUID || p.Options.Path != DefaultDashboardsPath || p.AllowUIUpdates {
		t.Fatalf("got provider %+v; want a file provider of %s into folder %s (%s), no UI updates", p, DefaultDashboardsPath, FolderTitle, FolderUID)
	}
	var jsons []string
	for name := range files {
		if strings.HasPrefix(name, JSONDir+"/") {
			jsons = append(jsons, name)
		}
	}
	slices.Sort(jsons)
	want := []string{"json/telltale-deploys.json", "json/telltale-hosts.json", "json/telltale-self.json", "json/telltale-service.json"}
	if !slices.Equal(jsons, want) {
		t.Fatalf("got dashboard files %v; want %v", jsons, want)
	}
}

func TestBadOptions(t *testing.T) {
	f := func(opts Options, wantInErr string) {
		t.Helper()
		_, err := Files(nil, opts)
		if err == nil || !strings.Contains(err.Error(), wantInErr) {
			t.Fatalf("Files(%+v): got error %v; want one containing %q", opts, err, wantInErr)
		}
	}
	f(Options{DatasourceURL: "collector:9470"}, "http://collector:9470")
	f(Options{DashboardsPath: "dashboards"}, "must be absolute")
	f(Options{DatasourceURL: `http://x/"`}, "quotes")
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	files := mustFiles(t, Options{})
	changed, err := Write(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if len(changed) != len(files) {
		t.Fatalf("first write changed %v; want all %d files", changed, len(files))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: got %d bytes (err %v); want the %d rendered", name, len(got), err, len(want))
		}
	}

	// A second write changes nothing; a stale dashboard goes, other files stay.
	stale := filepath.Join(dir, JSONDir, "old-dashboard.json")
	keep := filepath.Join(dir, JSONDir, "README.md")
	mine := filepath.Join(dir, "main.go")
	for _, p := range []string{stale, keep, mine} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	changed, err = Write(dir, files)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(changed, []string{"json/old-dashboard.json"}) {
		t.Fatalf("second write changed %v; want only the stale dashboard removed", changed)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale dashboard still there: %v", err)
	}
	for _, p := range []string{keep, mine} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s was removed: %v", p, err)
		}
	}

	// An edited file is put back.
	p := filepath.Join(dir, DatasourceFile)
	if err := os.WriteFile(p, []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	if changed, _ = Write(dir, files); !slices.Equal(changed, []string{DatasourceFile}) {
		t.Fatalf("got changed %v; want the edited %s rewritten", changed, DatasourceFile)
	}
}
