package ingest

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/telltale-dev/telltale/collector/collectortest"
)

// telegrafBody is what one Telegraf flush of a host looks like: cpu (per
// core), mem, disk, net and a postgresql measurement that carries its own
// db tag, nanosecond timestamps; it returns the body and its float samples.
func telegrafBody(hosts int, ts time.Time, dbTags bool) ([]byte, int) {
	var b bytes.Buffer
	n := 0
	t := ts.UnixNano()
	for h := range hosts {
		host := fmt.Sprintf("web-%03d.example.com", h)
		for c := range 8 {
			fmt.Fprintf(&b, "cpu,cpu=cpu%d,host=%s usage_user=%d.5,usage_system=3.25,usage_idle=80.125,usage_iowait=0.5 %d\n", c, host, c, t)
			n += 4
		}
		fmt.Fprintf(&b, "mem,host=%s total=16777216000i,used=8388608000i,used_percent=50.0,available=8388608000i %d\n", host, t)
		n += 4
		fmt.Fprintf(&b, "disk,device=nvme0n1p1,fstype=ext4,host=%s,mode=rw,path=/ free=100000000i,used=50000000i,used_percent=33.3,inodes_free=1000000i %d\n", host, t)
		n += 4
		fmt.Fprintf(&b, "net,host=%s,interface=eth0 bytes_sent=123456789i,bytes_recv=987654321i,packets_sent=12345i,packets_recv=54321i,err_in=0i,err_out=0i %d\n", host, t)
		n += 6
		if dbTags {
			fmt.Fprintf(&b, "postgresql,db=orders,host=%s numbackends=12i,xact_commit=123456i,blks_hit=99999i,state=\"ok\" %d\n", host, t)
			n += 3
		}
	}
	return b.Bytes(), n
}

// BenchmarkInfluxWrite measures the whole endpoint short of the network and the
// TSDB: body reading (and gunzip), parsing, the db label, validation and
// the series-ref cache of the shared Writer, appending to a storage that
// drops everything.
func BenchmarkInfluxWrite(b *testing.B) {
	for _, c := range []struct {
		name   string
		gz     bool
		dbTags bool // some lines carry their own db tag: the slower db path
	}{{"plain", false, false}, {"gzip", true, false}, {"plain_dbtags", false, true}} {
		b.Run(c.name, func(b *testing.B) {
			body, n := telegrafBody(50, time.Now(), c.dbTags)
			raw := len(body)
			if c.gz {
				body = collectortest.Gzip(b, body)
			}
			w := NewWriter(collectortest.NopStore{}, Options{Limits: Limits{MaxLabelsPerSeries: 40}})
			h := NewInflux(NewHandlers(w, HTTPOptions{}), InfluxOptions{MaxLineLen: 256 << 10})
			rw := &discardResponse{h: http.Header{}}
			serve := func() {
				req, _ := http.NewRequest(http.MethodPost, "/write?db=telegraf", bytes.NewReader(body))
				if c.gz {
					req.Header.Set("Content-Encoding", "gzip")
				}
				rw.status = 0
				h.WriteV1(rw, req)
				if rw.status != http.StatusNoContent {
					b.Fatalf("got status %d", rw.status)
				}
			}
			serve() // fill the series-ref cache, as a running collector has
			b.SetBytes(int64(raw))
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(n), "samples/req")
		})
	}
}
