package main

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// defaultURL is the collector URL the demo, the annotator and the tail
// command use when given none.
const defaultURL = "http://127.0.0.1:9470"

// nextSteps is what a person who just ran `go run ./collector` reads next:
// where to look and the two commands that put app metrics and a deploy
// marker on the graphs. base is the collector's URL as it listens; an
// unspecified host (0.0.0.0, [::]) is shown as loopback, which a browser
// on this machine can open.
func nextSteps(base string) string {
	if u, err := url.Parse(base); err == nil {
		if host, port, err := net.SplitHostPort(u.Host); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				u.Host = net.JoinHostPort("127.0.0.1", port)
				base = u.String()
			}
		}
	}
	collector := ""
	if base != defaultURL {
		collector = " -collector " + base
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nTelltale collector is up. Next:\n")
	fmt.Fprintf(&b, "  open      %s/   (deploy log, dashboards with deploy markers, live view)\n", base)
	fmt.Fprintf(&b, "  app data  go run ./instrument/demo -collector %s\n", base)
	fmt.Fprintf(&b, "  a deploy  go run ./annotator deploy%s -service demo -env dev -version v1.2.3   (a marker on every graph)\n", collector)
	fmt.Fprintf(&b, "  Grafana   a Prometheus data source with URL %s\n\n", base)
	return b.String()
}
