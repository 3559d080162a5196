package bench

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdptcp/xdptcp/adapter"
)

// TestSmoke runs every workload for about 200 ms per configuration in one
// round and checks that the numbers are sane. It asserts no speed.
func TestSmoke(t *testing.T) {
	s := Settings{Workloads: WorkloadNames, Duration: 200 * time.Millisecond, Rounds: 1, Clients: []int{16, 64}, Conns: []int{2000}}
	var log strings.Builder
	rep, err := Run(s, &log)
	t.Logf("progress:\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("table:\n%s", table.String())

	if got, want := len(rep.Samples), len(WorkloadNames)*len(Configs); got != want {
		t.Fatalf("%d samples, want %d", got, want)
	}
	for _, smp := range rep.Samples {
		if smp.Skipped != "" {
			// Only scaling is skipped, and only for gVisor's TCP (no shards).
			if smp.Workload != "scaling" || smp.Config != "gvisor" || len(smp.Metrics) != 0 {
				t.Errorf("%s/%s: skipped (%s) with %d metrics", smp.Workload, smp.Config, smp.Skipped, len(smp.Metrics))
			}
			continue
		}
		if len(smp.Metrics) == 0 {
			t.Errorf("%s/%s: no metrics", smp.Workload, smp.Config)
		}
		for _, m := range smp.Metrics {
			if !(m.Value > 0) {
				t.Errorf("%s/%s: %s = %v, want > 0", smp.Workload, smp.Config, m.Name, m.Value)
			}
		}
		for _, r := range smp.Raw {
			switch r := r.(type) {
			case ShortResult:
				if r.Conns <= 0 || r.Errors != 0 || r.CPU <= 0 || r.Mallocs == 0 {
					t.Errorf("%s/%s: short %+v", smp.Workload, smp.Config, r)
				}
			case BulkResult:
				if r.Bytes <= 0 || r.Errors != 0 {
					t.Errorf("%s/%s: bulk %+v", smp.Workload, smp.Config, r)
				}
			case RRResult:
				if r.Trips <= 0 || r.Errors != 0 || r.P50 <= 0 || r.P99 < r.P50 || r.P999 < r.P99 {
					t.Errorf("%s/%s: rr %+v", smp.Workload, smp.Config, r)
				}
			case ScalingPoint:
				if r.Conns <= 0 || r.Errors != 0 || r.CPU <= 0 || r.ServerShards < 1 || r.ClientShards < r.ServerShards {
					t.Errorf("%s/%s: scaling %+v", smp.Workload, smp.Config, r)
				}
			case MemoryResult:
				if r.Conns != r.Target || r.Capped != "" || !(r.ServerHeap > 0 && r.ClientHeap > 0) {
					t.Errorf("%s/%s: memory %+v", smp.Workload, smp.Config, r)
				}
			default:
				t.Errorf("%s/%s: unexpected raw %T", smp.Workload, smp.Config, r)
			}
		}
	}
	if len(rep.Rows) == 0 {
		t.Fatal("no medians")
	}
	for _, row := range rep.Rows {
		if strings.HasPrefix(row.Metric, "scaling ") {
			// batchtcp only: gVisor's column and the ratio are NaN.
			if !(row.BatchTCP > 0) || !math.IsNaN(float64(row.GVisor)) {
				t.Errorf("row %+v", row)
			}
			continue
		}
		if !(row.BatchTCP > 0 && row.GVisor > 0 && row.Ratio > 0) {
			t.Errorf("row %+v", row)
		}
	}
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if n := len(back["samples"].([]any)); n != len(rep.Samples) {
		t.Errorf("JSON has %d samples, want %d", n, len(rep.Samples))
	}
}

func TestParseWorkloads(t *testing.T) {
	got, err := ParseWorkloads("rr, short,rr")
	if err != nil || strings.Join(got, ",") != "rr,short" {
		t.Errorf("got %v, %v", got, err)
	}
	for _, bad := range []string{"", "short,nope", ","} {
		if _, err := ParseWorkloads(bad); err == nil {
			t.Errorf("ParseWorkloads(%q): no error", bad)
		}
	}
}

func TestMedianQuantile(t *testing.T) {
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v", m)
	}
	if m := Median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v", m)
	}
	d := make([]time.Duration, 1000)
	for i := range d {
		d[i] = time.Duration(i + 1)
	}
	if q := Quantile(d, 0.5); q != 500 {
		t.Errorf("p50 = %v", q)
	}
	if q := Quantile(d, 0.999); q != 999 {
		t.Errorf("p999 = %v", q)
	}
}

func benchPair(b *testing.B, tr adapter.Transport) *Pair {
	b.Helper()
	p, err := NewPair(tr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Close)
	return p
}

// benchShort runs b.N short connections with 64 clients.
func benchShort(b *testing.B, tr adapter.Transport) {
	p := benchPair(b, tr)
	b.ResetTimer()
	r, err := Short(p, Opts{Count: int64(b.N), Clients: 64})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.Conns)/r.Elapsed.Seconds(), "conns/s")
	b.ReportMetric(r.CPU.Seconds()/float64(r.Conns)*1000, "cpu-s/kconn")
	b.ReportMetric(float64(r.Mallocs)/float64(r.Conns), "allocs/conn")
	b.ReportMetric(float64(r.AllocBytes)/float64(r.Conns), "B/conn")
}

// benchBulk sends b.N ChunkSize writes over streams streams.
func benchBulk(b *testing.B, tr adapter.Transport, streams int) {
	p := benchPair(b, tr)
	b.SetBytes(ChunkSize)
	b.ResetTimer()
	r, err := Bulk(p, Opts{Count: int64(b.N), Clients: streams})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.Bytes)*8/r.Elapsed.Seconds()/1e9, "Gb/s")
	b.ReportMetric(r.CPU.Seconds()/(float64(r.Bytes)/(1<<30)), "cpu-s/GiB")
	b.ReportMetric(float64(r.Mallocs)/(float64(r.Bytes)/(1<<20)), "allocs/MiB")
}

// benchRR runs b.N round trips over conns connections.
func benchRR(b *testing.B, tr adapter.Transport, conns int) {
	p := benchPair(b, tr)
	b.ResetTimer()
	r, err := RR(p, Opts{Count: int64(b.N), Clients: conns})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(r.P50)/1e3, "p50-µs")
	b.ReportMetric(float64(r.P99)/1e3, "p99-µs")
	b.ReportMetric(float64(r.P999)/1e3, "p999-µs")
}

func BenchmarkShortBatchTCP(b *testing.B) { benchShort(b, adapter.BatchTCP) }
func BenchmarkShortGVisor(b *testing.B)   { benchShort(b, adapter.GVisorTCP) }
func BenchmarkBulkBatchTCP(b *testing.B)  { benchBulk(b, adapter.BatchTCP, 1) }
func BenchmarkBulkGVisor(b *testing.B)    { benchBulk(b, adapter.GVisorTCP, 1) }
func BenchmarkBulk8BatchTCP(b *testing.B) { benchBulk(b, adapter.BatchTCP, 8) }
func BenchmarkBulk8GVisor(b *testing.B)   { benchBulk(b, adapter.GVisorTCP, 8) }
func BenchmarkRRBatchTCP(b *testing.B)    { benchRR(b, adapter.BatchTCP, 1) }
func BenchmarkRRGVisor(b *testing.B)      { benchRR(b, adapter.GVisorTCP, 1) }
func BenchmarkRR64BatchTCP(b *testing.B)  { benchRR(b, adapter.BatchTCP, 64) }
func BenchmarkRR64GVisor(b *testing.B)    { benchRR(b, adapter.GVisorTCP, 64) }
