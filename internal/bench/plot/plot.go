// Package plot renders charts of a bench.Report (what `xdptcp bench -json`
// writes) as PNG and SVG files with gonum/plot:
//
//   - ratios: batchtcp against gVisor's TCP for every metric both have, as
//     "times better" (batchtcp/gVisor where higher is better, gVisor/batchtcp
//     where lower is better), with a line at 1;
//   - rr-latency: the rr workload's latency percentiles per configuration
//     and load;
//   - scaling: batchtcp connections/s against server shards, every round
//     and the medians, with linear scaling from 1 shard for reference;
//   - memory: bytes per connection against the connection count.
//
// A chart whose metrics the report lacks is not written.
package plot

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/xdptcp/xdptcp/internal/bench"
)

// Formats are the file formats Write renders each chart in.
var Formats = []string{"png", "svg"}

// Colors of the configurations, and of anything else.
var (
	batchColor  = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff} // blue
	gvisorColor = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff} // orange
	worseColor  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff} // red
	greyColor   = color.RGBA{R: 0x80, G: 0x80, B: 0x80, A: 0xff}
)

func configColor(cfg string) color.Color {
	switch cfg {
	case "batchtcp":
		return batchColor
	case "gvisor":
		return gvisorColor
	}
	return greyColor
}

// chart is one rendered plot and its size.
type chart struct {
	name string
	p    *gplot.Plot
	w, h vg.Length
}

// Write renders every chart rep has data for into dir (created if need
// be), one file per chart and format, and returns the paths written.
func Write(rep *bench.Report, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var charts []chart
	for _, f := range []func(*bench.Report) (*chart, error){ratios, rrLatency, scaling, memory} {
		c, err := f(rep)
		if err != nil {
			return nil, err
		}
		if c != nil {
			charts = append(charts, *c)
		}
	}
	var paths []string
	for _, c := range charts {
		for _, ext := range Formats {
			path := filepath.Join(dir, c.name+"."+ext)
			if err := c.p.Save(c.w, c.h, path); err != nil {
				return paths, fmt.Errorf("plot: %s: %w", path, err)
			}
			paths = append(paths, path)
		}
	}
	return paths, nil
}

// machine is the subtitle naming the run.
func machine(rep *bench.Report) string {
	m := rep.Machine
	s := fmt.Sprintf("%s/%s, %d CPUs, GOMAXPROCS %d, %s", m.GOOS, m.GOARCH, m.NumCPU, m.GOMAXPROCS, m.Go)
	if rep.Settings.Rounds > 0 {
		s += fmt.Sprintf("; medians of %d round(s)", rep.Settings.Rounds)
	}
	if !rep.Started.IsZero() {
		s += ", " + rep.Started.UTC().Format("2006-01-02")
	}
	return s
}

func newPlot(title string, rep *bench.Report) *gplot.Plot {
	p := gplot.New()
	p.Title.Text = title + "\n" + machine(rep)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	return p
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// ratios is chart (a): for every metric with both configurations,
// how many times better batchtcp is than gVisor's TCP (< 1: worse). It
// returns nil if no metric has both.
func ratios(rep *bench.Report) (*chart, error) {
	var (
		names []string
		vals  plotter.Values
	)
	for _, r := range rep.Rows {
		b, g := float64(r.BatchTCP), float64(r.GVisor)
		if !finite(b) || !finite(g) || b <= 0 || g <= 0 {
			continue
		}
		v, dir := b/g, "b/g"
		if !r.Higher {
			v, dir = g/b, "g/b"
		}
		names = append(names, fmt.Sprintf("%s (%s)", r.Metric, dir))
		vals = append(vals, v)
	}
	if len(names) == 0 {
		return nil, nil
	}
	// Top to bottom in report order: the Y axis grows upwards.
	slices.Reverse(names)
	slices.Reverse(vals)
	p := newPlot("batchtcp vs gVisor's TCP, in process: times better (b/g: batchtcp/gVisor, higher is better; g/b: gVisor/batchtcp, lower is better)", rep)
	p.Title.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.Text = "times better than gVisor's TCP (log scale; bars grow from 1 = same; red: batchtcp worse)"
	p.X.Scale = gplot.LogScale{}
	p.X.Tick.Marker = ratioTicks{}
	p.X.Min = min(slices.Min(vals), 1) / 1.8
	p.X.Max = max(slices.Max(vals), 1) * 1.8 // room for the labels
	p.Add(plotter.NewGrid())
	p.Add(ratioBars{vals: vals, width: vg.Points(11)})
	one, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.6}, {X: 1, Y: float64(len(vals)) - 0.4}})
	if err != nil {
		return nil, err
	}
	one.LineStyle.Width = vg.Points(1.5)
	one.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(one)
	labels, err := valueLabels(vals)
	if err != nil {
		return nil, err
	}
	p.Add(labels)
	p.NominalY(names...)
	return &chart{name: "ratios", p: p, w: 9 * vg.Inch, h: vg.Length(len(names))*vg.Points(16) + 1.6*vg.Inch}, nil
}

// valueLabels writes "1.23x" right of each horizontal bar.
func valueLabels(vals plotter.Values) (*plotter.Labels, error) {
	var xys plotter.XYLabels
	for i, v := range vals {
		xys.XYs = append(xys.XYs, plotter.XY{X: v, Y: float64(i)})
		if v < 1 {
			xys.Labels = append(xys.Labels, fmt.Sprintf("%.2fx ", v))
		} else {
			xys.Labels = append(xys.Labels, fmt.Sprintf(" %.2fx", v))
		}
	}
	l, err := plotter.NewLabels(xys)
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].Font.Size = vg.Points(8)
		l.TextStyle[i].YAlign = draw.YCenter
		if vals[i] < 1 {
			l.TextStyle[i].XAlign = draw.XRight
		}
	}
	return l, nil
}

// ratioBars are horizontal bars from 1 to each value, for a log X axis
// (where a bar from 0 cannot be drawn): right of 1 in blue, left in red.
type ratioBars struct {
	vals  []float64
	width vg.Length
}

// Plot implements plot.Plotter.
func (b ratioBars) Plot(c draw.Canvas, plt *gplot.Plot) {
	trX, trY := plt.Transforms(&c)
	for i, v := range b.vals {
		y := trY(float64(i))
		x0, x1 := trX(1), trX(v)
		col := color.Color(batchColor)
		if v < 1 {
			col = worseColor
		}
		pts := []vg.Point{{X: x0, Y: y - b.width/2}, {X: x1, Y: y - b.width/2}, {X: x1, Y: y + b.width/2}, {X: x0, Y: y + b.width/2}}
		c.FillPolygon(col, c.ClipPolygonXY(pts))
	}
}

// DataRange implements plot.DataRanger.
func (b ratioBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = 1, 1
	for _, v := range b.vals {
		xmin, xmax = min(xmin, v), max(xmax, v)
	}
	return xmin, xmax, 0, float64(len(b.vals) - 1)
}

// ratioTicks marks 1, 2 and 5 times the powers of ten on a log axis, as
// "0.5x", "1x", "2x", ...
type ratioTicks struct{}

// Ticks implements plot.Ticker.
func (ratioTicks) Ticks(lo, hi float64) []gplot.Tick {
	var ts []gplot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v >= lo && v <= hi {
				ts = append(ts, gplot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 3, 64) + "x"})
			}
		}
	}
	return ts
}

// rrMetric matches the rr workload's percentiles: "rr 64 conn p99 µs".
var rrMetric = regexp.MustCompile(`^rr (.+) p(\d+) µs$`)

// percentile reads "99" as 0.99 and "999" as 0.999.
func percentile(digits string) float64 {
	f, _ := strconv.ParseFloat("0."+digits, 64)
	return f
}

// rrLatency is chart (b): rr latency against percentile, one line per
// configuration and load, on a log scale. It returns nil without rr
// percentiles.
func rrLatency(rep *bench.Report) (*chart, error) {
	type key struct{ load, cfg string }
	var (
		loads []string
		pcts  []string
	)
	vals := map[key]map[string]float64{}
	for _, r := range rep.Rows {
		m := rrMetric.FindStringSubmatch(r.Metric)
		if m == nil {
			continue
		}
		load, pct := m[1], m[2]
		if !slices.Contains(loads, load) {
			loads = append(loads, load)
		}
		if !slices.Contains(pcts, pct) {
			pcts = append(pcts, pct)
		}
		for cfg, v := range map[string]float64{"batchtcp": float64(r.BatchTCP), "gvisor": float64(r.GVisor)} {
			if finite(v) && v > 0 {
				k := key{load, cfg}
				if vals[k] == nil {
					vals[k] = map[string]float64{}
				}
				vals[k][pct] = v
			}
		}
	}
	if len(vals) == 0 {
		return nil, nil
	}
	slices.SortFunc(pcts, func(a, b string) int { return cmpFloat(percentile(a), percentile(b)) })
	p := newPlot("rr: 64 B ping-pong latency on persistent connections, in process", rep)
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "round-trip latency (µs, log scale)"
	p.Y.Scale = gplot.LogScale{}
	p.Y.Tick.Marker = gplot.LogTicks{Prec: -1}
	names := make([]string, len(pcts))
	for i, pc := range pcts {
		names[i] = "p" + pc
	}
	dashes := [][]vg.Length{nil, {vg.Points(5), vg.Points(3)}, {vg.Points(2), vg.Points(2)}, {vg.Points(8), vg.Points(2), vg.Points(2), vg.Points(2)}}
	shapes := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.TriangleGlyph{}, draw.SquareGlyph{}, draw.CrossGlyph{}}
	for li, load := range loads {
		for _, cfg := range []string{"batchtcp", "gvisor"} {
			v := vals[key{load, cfg}]
			if len(v) == 0 {
				continue
			}
			var xys plotter.XYs
			for i, pc := range pcts {
				if y, ok := v[pc]; ok {
					xys = append(xys, plotter.XY{X: float64(i), Y: y})
				}
			}
			l, s, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			c := configColor(cfg)
			l.Color, s.Color = c, c
			l.Width = vg.Points(1.5)
			l.Dashes = dashes[li%len(dashes)]
			s.Shape = shapes[li%len(shapes)]
			s.Radius = vg.Points(3)
			p.Add(l, s)
			p.Legend.Add(fmt.Sprintf("%s, %s", cfg, load), l, s)
		}
	}
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.3, float64(len(pcts))-0.7
	// Latency grows with the percentile: the top left is free.
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(10)
	p.Add(plotter.NewGrid())
	return &chart{name: "rr-latency", p: p, w: 7 * vg.Inch, h: 5 * vg.Inch}, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scalingMetric matches the scaling workload's rates: "scaling 2 shard
// conn/s" (the server's shards vary) and "scaling 2 core conn/s"
// (GOMAXPROCS and both stacks' shards vary).
var scalingMetric = regexp.MustCompile(`^scaling (\d+) (shard|core) conn/s$`)

// scalingModes name the scaling workload's two series.
var scalingModes = []struct{ mode, legend string }{
	{"shard", "server shards vary; load generator's stack at %d, GOMAXPROCS %d"},
	{"core", "GOMAXPROCS = shards on both stacks (load generator included)"},
}

// scaling is chart (c): batchtcp connections/s against the shard count,
// per mode the medians joined by a line and every round as a cross, with
// linear scaling from the 1-shard median for reference. It returns nil
// without scaling metrics.
func scaling(rep *bench.Report) (*chart, error) {
	med := map[string]plotter.XYs{}
	rounds := map[string]plotter.XYs{}
	var xs []float64
	for _, r := range rep.Rows {
		if m := scalingMetric.FindStringSubmatch(r.Metric); m != nil && finite(float64(r.BatchTCP)) {
			n, _ := strconv.Atoi(m[1])
			med[m[2]] = append(med[m[2]], plotter.XY{X: float64(n), Y: float64(r.BatchTCP)})
			if !slices.Contains(xs, float64(n)) {
				xs = append(xs, float64(n))
			}
		}
	}
	if len(med) == 0 {
		return nil, nil
	}
	slices.Sort(xs)
	clientShards, procs := 0, rep.Machine.GOMAXPROCS
	for _, s := range rep.Samples {
		if s.Workload != "scaling" || s.Config != "batchtcp" || s.Error != "" {
			continue
		}
		for _, m := range s.Metrics {
			if mm := scalingMetric.FindStringSubmatch(m.Name); mm != nil {
				n, _ := strconv.Atoi(mm[1])
				rounds[mm[2]] = append(rounds[mm[2]], plotter.XY{X: float64(n), Y: m.Value})
			}
		}
		for _, raw := range s.Raw {
			switch pt := raw.(type) {
			case bench.ScalingPoint:
				if pt.Mode == "shard" {
					clientShards = pt.ClientShards
				}
			case map[string]any:
				if f, ok := pt["client_shards"].(float64); ok && pt["mode"] == "shard" {
					clientShards = int(f)
				}
			}
		}
	}
	p := newPlot("scaling: short connections (connect, 64 B each way, close, 1 client count), batchtcp in process\nload generator and server share the machine's cores", rep)
	p.Title.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.Text = "batchtcp shards (server's; in \"core\" mode also the client's and GOMAXPROCS)"
	p.Y.Label.Text = "connections/s"
	p.Y.Min = 0
	var ticks []gplot.Tick
	for _, x := range xs {
		ticks = append(ticks, gplot.Tick{Value: x, Label: strconv.Itoa(int(x))})
	}
	p.X.Tick.Marker = gplot.ConstantTicks(ticks)
	p.X.Min, p.X.Max = xs[0]-0.3, xs[len(xs)-1]+0.7 // room for the last labels
	colors := []color.Color{batchColor, color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}}
	for mi, sm := range scalingModes {
		pts := med[sm.mode]
		if len(pts) == 0 {
			continue
		}
		slices.SortFunc(pts, func(a, b plotter.XY) int { return cmpFloat(a.X, b.X) })
		c := colors[mi%len(colors)]
		legend := sm.legend
		if sm.mode == "shard" {
			if clientShards == 0 {
				legend = "server shards vary"
			} else {
				legend = fmt.Sprintf(legend, clientShards, procs)
			}
		}
		if pts[0].X == 1 && len(pts) > 1 {
			last := pts[len(pts)-1]
			l, err := plotter.NewLine(plotter.XYs{pts[0], {X: last.X, Y: pts[0].Y * last.X}})
			if err != nil {
				return nil, err
			}
			l.Color, l.Dashes = c, []vg.Length{vg.Points(2), vg.Points(3)}
			p.Add(l)
			p.Legend.Add(sm.mode+": linear from 1", l)
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color, l.Width, s.Radius = c, c, vg.Points(2), vg.Points(4)
		p.Add(l, s)
		p.Legend.Add(sm.mode+": "+legend+", median", l, s)
		if r := rounds[sm.mode]; len(r) > 0 {
			rs, err := plotter.NewScatter(r)
			if err != nil {
				return nil, err
			}
			rs.Color, rs.Shape, rs.Radius = c, draw.CrossGlyph{}, vg.Points(3)
			p.Add(rs)
		}
		var lx plotter.XYLabels
		for _, xy := range pts {
			lx.XYs = append(lx.XYs, xy)
			lx.Labels = append(lx.Labels, fmt.Sprintf("  %.0f/s (%.2fx)", xy.Y, xy.Y/pts[0].Y))
		}
		labels, err := plotter.NewLabels(lx)
		if err != nil {
			return nil, err
		}
		for i := range labels.TextStyle {
			labels.TextStyle[i].Font.Size = vg.Points(9)
			labels.TextStyle[i].YAlign = draw.YCenter
			labels.TextStyle[i].Color = c
		}
		p.Add(labels)
	}
	p.Legend.Top = false
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Add(plotter.NewGrid())
	return &chart{name: "scaling", p: p, w: 8 * vg.Inch, h: 5.5 * vg.Inch}, nil
}

// memoryMetric matches per-connection memory metrics of the memory
// workload: "memory 10k B/conn heap", "memory 1M B/conn RSS".
var memoryMetric = regexp.MustCompile(`^memory (\d+(?:\.\d+)?)([kKmM]?) (.*B/conn.*)$`)

// connCount reads "10", "10k" or "1M".
func connCount(num, suffix string) float64 {
	f, _ := strconv.ParseFloat(num, 64)
	switch suffix {
	case "k", "K":
		f *= 1e3
	case "m", "M":
		f *= 1e6
	}
	return f
}

// memory is chart (d): bytes per connection against the number of
// connections, one line per configuration and kind (heap, RSS, ...), log
// scale on X. It returns nil without memory metrics.
func memory(rep *bench.Report) (*chart, error) {
	type key struct{ kind, cfg string }
	var kinds []string
	pts := map[key]plotter.XYs{}
	for _, r := range rep.Rows {
		m := memoryMetric.FindStringSubmatch(r.Metric)
		if m == nil {
			continue
		}
		n := connCount(m[1], m[2])
		kind := strings.TrimSpace(strings.Replace(m[3], "B/conn", "", 1))
		if kind == "" {
			kind = "total"
		}
		if !slices.Contains(kinds, kind) {
			kinds = append(kinds, kind)
		}
		for cfg, v := range map[string]float64{"batchtcp": float64(r.BatchTCP), "gvisor": float64(r.GVisor)} {
			if finite(v) && v > 0 && n > 0 {
				k := key{kind, cfg}
				pts[k] = append(pts[k], plotter.XY{X: n, Y: v})
			}
		}
	}
	if len(pts) == 0 {
		return nil, nil
	}
	p := newPlot("memory per idle established connection, in process", rep)
	p.X.Label.Text = "established connections (log scale)"
	p.Y.Label.Text = "bytes per connection"
	p.X.Scale = gplot.LogScale{}
	p.X.Tick.Marker = countTicks{}
	p.Y.Min = 0
	dashes := [][]vg.Length{nil, {vg.Points(5), vg.Points(3)}, {vg.Points(2), vg.Points(2)}}
	shapes := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.TriangleGlyph{}, draw.SquareGlyph{}}
	for ki, kind := range kinds {
		for _, cfg := range []string{"batchtcp", "gvisor"} {
			xys := pts[key{kind, cfg}]
			if len(xys) == 0 {
				continue
			}
			slices.SortFunc(xys, func(a, b plotter.XY) int { return cmpFloat(a.X, b.X) })
			l, s, err := plotter.NewLinePoints(xys)
			if err != nil {
				return nil, err
			}
			c := configColor(cfg)
			l.Color, s.Color, l.Width = c, c, vg.Points(1.5)
			l.Dashes = dashes[ki%len(dashes)]
			s.Shape, s.Radius = shapes[ki%len(shapes)], vg.Points(3)
			p.Add(l, s)
			p.Legend.Add(cfg+", "+kind, l, s)
		}
	}
	// 4 KiB per connection: the target.
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, xys := range pts {
		for _, xy := range xys {
			lo, hi = min(lo, xy.X), max(hi, xy.X)
		}
	}
	if hi > lo {
		t, err := plotter.NewLine(plotter.XYs{{X: lo, Y: 4096}, {X: hi, Y: 4096}})
		if err != nil {
			return nil, err
		}
		t.Color, t.Dashes = greyColor, []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(t)
		p.Legend.Add("4 KiB target", t)
		p.X.Min, p.X.Max = lo/1.5, hi*1.5
	}
	// Room above the lines for the legend.
	top := 4096.0
	for _, xys := range pts {
		for _, xy := range xys {
			top = max(top, xy.Y)
		}
	}
	p.Y.Max = top * 1.45
	p.Add(plotter.NewGrid())
	return &chart{name: "memory", p: p, w: 7 * vg.Inch, h: 5 * vg.Inch}, nil
}

// countTicks marks powers of ten on a log axis as 1, 10, 100, 1k, 10k,
// 100k, 1M, ...
type countTicks struct{}

// Ticks implements plot.Ticker.
func (countTicks) Ticks(lo, hi float64) []gplot.Tick {
	var ts []gplot.Tick
	for e := math.Floor(math.Log10(max(lo, 1))); ; e++ {
		v := math.Pow(10, e)
		if v > hi {
			break
		}
		if v >= lo {
			ts = append(ts, gplot.Tick{Value: v, Label: countLabel(v)})
		}
	}
	return ts
}

func countLabel(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
