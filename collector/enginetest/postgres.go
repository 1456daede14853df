package enginetest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Postgres is a throwaway PostgreSQL cluster on loopback.
type Postgres struct {
	// URL connects to database postgres as user postgres (trust auth).
	URL  string
	Port int
	dir  string
	bin  string
}

// StartPostgres initializes a cluster in a fresh directory (as the
// postgres user when the test runs as root: PostgreSQL refuses to run as
// root), starts it on a free loopback port and stops it when the test
// ends. The binaries are Debian's (.ci/run installs the postgresql
// package); TELLTALE_PG_BIN names another directory.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := os.Getenv("TELLTALE_PG_BIN")
	if bin == "" {
		matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
		if len(matches) > 0 {
			bin = filepath.Dir(matches[len(matches)-1])
		}
	}
	if _, err := os.Stat(filepath.Join(bin, "initdb")); bin == "" || err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL's initdb not found (TELLTALE_PG_BIN=%q); .ci/run installs Debian's postgresql package", bin)
		}
		t.Skip("PostgreSQL not installed: apt-get install postgresql (or set TELLTALE_PG_BIN)")
	}
	// Not t.TempDir: its parents are private to root, and the server runs
	// as postgres.
	dir, err := os.MkdirTemp("", "telltale-pg-")
	if err != nil {
		t.Fatal(err)
	}
	pg := &Postgres{Port: FreePort(t), dir: dir, bin: bin}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user (Debian's postgresql package makes it): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		pg.run(t, "pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	if out, err := pg.run(t, "initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off", pg.Port, dir)
	start := time.Now()
	if out, err := pg.run(t, "pg_ctl", "-D", filepath.Join(dir, "data"), "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	t.Logf("PostgreSQL on 127.0.0.1:%d (started in %s)", pg.Port, time.Since(start).Round(time.Millisecond))
	pg.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.Port)
	return pg
}

// run runs one of the cluster's programs, as postgres when root.
func (pg *Postgres) run(t testing.TB, prog string, args ...string) ([]byte, error) {
	path := filepath.Join(pg.bin, prog)
	if os.Geteuid() != 0 {
		return exec.Command(path, args...).CombinedOutput()
	}
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return exec.Command("su", "postgres", "-s", "/bin/sh", "-c", path+" "+strings.Join(q, " ")).CombinedOutput()
}

// Database creates database name and returns its URL.
func (pg *Postgres) Database(t testing.TB, name string) string {
	t.Helper()
	if out, err := pg.run(t, "createdb", "-h", "127.0.0.1", "-p", strconv.Itoa(pg.Port), "-U", "postgres", name); err != nil {
		t.Fatalf("createdb %s: %v\n%s", name, err, out)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", pg.Port, name)
}
