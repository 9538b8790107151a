package loadtest

import (
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartW, chartH = 760, 260
	padL, padR     = 64, 20
	padT, padB     = 34, 42
)

// series is one line of a chart.
type series struct {
	name  string
	color string
	ys    []float64
}

// chartSpec is one chart over the run's timeline.
type chartSpec struct {
	title, unit string
	xs          []float64
	lines       []series
}

// charts returns the report's three charts: latency, connections and
// delivery rate over time.
func (r *Report) charts() []chartSpec {
	n := len(r.Timeline)
	xs := make([]float64, n)
	p50, p99 := make([]float64, n), make([]float64, n)
	conn, failed := make([]float64, n), make([]float64, n)
	rate := make([]float64, n)
	for i, s := range r.Timeline {
		xs[i] = s.ElapsedS
		p50[i], p99[i] = s.P50Ms, s.P99Ms
		conn[i], failed[i] = float64(s.Connected), float64(s.ConnectFailed)
		rate[i] = s.DeliveriesPerS
	}
	return []chartSpec{
		{title: "End-to-end latency per interval", unit: "ms", xs: xs, lines: []series{
			{name: "p50", color: "#1f77b4", ys: p50}, {name: "p99", color: "#d62728", ys: p99},
		}},
		{title: "Subscriber connections", unit: "connections", xs: xs, lines: []series{
			{name: "connected", color: "#2ca02c", ys: conn}, {name: "failed", color: "#d62728", ys: failed},
		}},
		{title: "Deliveries per second", unit: "deliveries/s", xs: xs, lines: []series{
			{name: "deliveries/s", color: "#9467bd", ys: rate},
		}},
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for axis ticks.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// fmtNum prints an axis label compactly.
func fmtNum(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e7:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.2g", v)
	}
}

// svgBody renders the chart's elements (no <svg> wrapper), with its origin
// at the top left.
func (c chartSpec) svgBody(b *strings.Builder) {
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	maxX, maxY := 0.0, 0.0
	for _, x := range c.xs {
		maxX = max(maxX, x)
	}
	for _, l := range c.lines {
		for _, y := range l.ys {
			maxY = max(maxY, y)
		}
	}
	maxX, maxY = niceCeil(maxX), niceCeil(maxY)
	px := func(x float64) float64 { return padL + x/maxX*plotW }
	py := func(y float64) float64 { return padT + plotH - y/maxY*plotH }

	fmt.Fprintf(b, `<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`, chartW, chartH)
	fmt.Fprintf(b, `<text x="%d" y="20" font-size="15" font-weight="bold">%s</text>`, padL, html.EscapeString(c.title))
	const ticks = 5
	for i := 0; i <= ticks; i++ {
		y := maxY * float64(i) / ticks
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e5e5"/>`, padL, py(y), chartW-padR, py(y))
		fmt.Fprintf(b, `<text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`, padL-6, py(y)+4, fmtNum(y))
		x := maxX * float64(i) / ticks
		fmt.Fprintf(b, `<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`, px(x), chartH-padB+16, fmtNum(x))
	}
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`, padL, padT, padL, chartH-padB)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`, padL, chartH-padB, chartW-padR, chartH-padB)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="11" text-anchor="middle">time (s)</text>`, padL+int(plotW/2), chartH-8)
	fmt.Fprintf(b, `<text x="14" y="%d" font-size="11" text-anchor="middle" transform="rotate(-90 14 %d)">%s</text>`,
		padT+int(plotH/2), padT+int(plotH/2), html.EscapeString(c.unit))
	if len(c.xs) == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="13" fill="#888">no samples</text>`, padL+20, padT+30)
	}
	for i, l := range c.lines {
		var pts strings.Builder
		for j, y := range l.ys {
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(c.xs[j]), py(y))
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`, l.color, strings.TrimSpace(pts.String()))
		if len(l.ys) == 1 { // a single point is invisible as a line
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`, px(c.xs[0]), py(l.ys[0]), l.color)
		}
		lx := chartW - padR - 130*(len(c.lines)-i)
		fmt.Fprintf(b, `<rect x="%d" y="10" width="12" height="12" fill="%s"/><text x="%d" y="20" font-size="12">%s</text>`,
			lx, l.color, lx+16, html.EscapeString(l.name))
	}
}

// svg renders one chart as an inline <svg> element.
func (c chartSpec) svg() string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, html.EscapeString(c.title))
	c.svgBody(&b)
	b.WriteString(`</svg>`)
	return b.String()
}

// WriteSVG writes a standalone SVG document with the three charts stacked,
// for embedding in places that take images but not HTML.
func (r *Report) WriteSVG(w io.Writer) error {
	cs := r.charts()
	var b strings.Builder
	h := chartH * len(cs)
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`,
		chartW, h, chartW, h)
	fmt.Fprintf(&b, `<title>bookhub load test %s</title>`, html.EscapeString(r.RunID))
	for i, c := range cs {
		fmt.Fprintf(&b, `<g transform="translate(0,%d)">`, i*chartH)
		c.svgBody(&b)
		b.WriteString(`</g>`)
	}
	b.WriteString("</svg>\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write SVG report: %w", err)
	}
	return nil
}

var htmlTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"bytes": fmtBytes, "ibytes": func(n int64) string { return fmtBytes(float64(n)) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>bookhub load test {{.R.RunID}}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
th { background: #f4f4f4; text-align: left; }
.ok { color: #2a7a2a; } .fail { color: #c62828; }
figure { margin: 1em 0; }
</style>
</head>
<body>
<h1>bookhub load test {{.R.RunID}}</h1>
<p>Started {{.R.StartedAt.Format "2006-01-02 15:04:05 MST"}}, ran {{printf "%.1f" .R.DurationS}}s against {{range $i, $t := .R.Config.Targets}}{{if $i}}, {{end}}<code>{{$t}}</code>{{end}}.</p>
{{if .Problems}}<ul class="fail">{{range .Problems}}<li>{{.Text}}</li>{{end}}</ul>
{{else}}<p class="ok">OK: {{.OKText}}.</p>{{end}}
<table>
<tr><th>Connections</th><td>attempted {{.R.Connections.Attempted}}</td><td>established {{.R.Connections.Established}}</td><td>failed {{.R.Connections.Failed}}</td><td>dropped {{.R.Connections.Dropped}}</td><td>{{printf "%.2f" .R.Connections.EstablishS}}s to connect</td></tr>
<tr><th>Writes</th><td>planned {{.R.Writes.Planned}}</td><td>ok {{.R.Writes.OK}}</td><td>failed {{.R.Writes.Failed}}</td><td>skipped {{.R.Writes.Skipped}}</td><td>{{printf "%.1f" .R.Writes.PerSecond}} writes/s</td></tr>
<tr><th>Deliveries</th><td>expected {{.R.Deliveries.Expected}}</td><td>received {{.R.Deliveries.Received}}</td><td>missing {{.R.Deliveries.Missing}}</td><td>duplicates {{.R.Deliveries.Duplicates}}</td><td>{{printf "%.0f" .R.Deliveries.PerSecond}} deliveries/s</td></tr>
<tr><th>Latency (ms)</th><td>p50 {{printf "%.2f" .R.Latency.P50Ms}}</td><td>p95 {{printf "%.2f" .R.Latency.P95Ms}}</td><td>p99 {{printf "%.2f" .R.Latency.P99Ms}}</td><td>max {{printf "%.2f" .R.Latency.MaxMs}}</td><td>{{.R.Latency.Count}} samples</td></tr>
<tr><th>Order</th><td>out of order {{.R.Deliveries.OutOfOrder}}</td><td>offset gaps {{.R.Deliveries.OffsetGaps}}</td><td>unexpected {{.R.Deliveries.Unexpected}}</td><td>foreign {{.R.Deliveries.Foreign}}</td><td></td></tr>
{{with .R.Cost.Server}}<tr><th>Server cost</th><td>{{printf "%.2f" .WriteCPUS}} CPU-s (write phase)</td><td>{{printf "%.0f" .WriteFrames}} frames</td><td>{{printf "%.4f" .CPUSPer1000}} CPU-s per 1,000 deliveries</td><td>{{len .MetricsURLs}} instances</td><td></td></tr>
{{with .IdlePerSocket}}<tr><th>Server idle per socket</th><td>RSS {{bytes .RSSBytes}}</td><td>heap {{bytes .HeapInuseBytes}}</td><td>stack {{bytes .StackInuseBytes}}</td><td>goroutines {{printf "%.2f" .Goroutines}}</td><td>{{$.R.Cost.Server.IdleSockets}} sockets</td></tr>{{end}}
{{end}}{{with .R.Cost.Generator}}<tr><th>Generator cost</th><td>generator CPU-s {{printf "%.2f" .CPUS}}</td><td>write phase {{printf "%.2f" .WriteCPUS}}</td><td>generator CPU-s per 1,000 deliveries {{printf "%.4f" .CPUSPer1000}}</td><td>max RSS {{ibytes .MaxRSSBytes}}</td><td></td></tr>{{end}}
</table>
{{range .Charts}}<figure>{{.}}</figure>
{{end}}
{{if .R.Errors}}<h2>Errors</h2>
<table><tr><th>kind</th><th>count</th><th>message</th></tr>
{{range .R.Errors}}<tr><td>{{.Kind}}</td><td>{{.Count}}</td><td style="text-align:left">{{.Message}}</td></tr>
{{end}}</table>{{end}}
</body>
</html>
`))

// WriteHTML writes a self-contained HTML report with inline SVG charts.
func (r *Report) WriteHTML(w io.Writer) error {
	var charts []template.HTML
	for _, c := range r.charts() {
		// svg() escapes every piece of text it embeds.
		charts = append(charts, template.HTML(c.svg())) //nolint:gosec
	}
	data := struct {
		R        *Report
		Problems []Problem
		OKText   string
		Charts   []template.HTML
	}{r, r.Problems(), r.okText(), charts}
	if err := htmlTmpl.Execute(w, data); err != nil {
		return fmt.Errorf("write HTML report: %w", err)
	}
	return nil
}
