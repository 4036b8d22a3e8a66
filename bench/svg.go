package main

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// The chart is plain SVG written with fmt and strings: horizontal bars,
// one panel per measurement, lockproof in blue, peers in orange, the
// references (raw floor, sync.Mutex) in grey.

const (
	svgWidth  = 900
	svgLabelW = 250 // label column, right-aligned at svgLabelW-8
	svgBarW   = 560
	svgRowH   = 22
)

type bar struct {
	label string
	value float64
	text  string
	kind  string // "lockproof", "peer", "ref"
}

type panel struct {
	title       string
	bars        []bar
	log         bool
	fixedMax    float64 // linear scale maximum; 0 picks one
	target      float64 // 0: no target line
	targetLabel string
	tick        func(float64) string
}

func kindOf(id string) string {
	switch {
	case strings.Contains(id, "floor"), strings.Contains(id, "syncmutex"):
		return "ref"
	case strings.Contains(id, "lockproof"), strings.Contains(id, "mem"):
		return "lockproof"
	}
	return "peer"
}

var svgColors = map[string]string{"lockproof": "#2b6cb0", "peer": "#dd6b20", "ref": "#8a94a6"}

// chart renders the run as an SVG document.
func (r *results) chart() string {
	c := r.cfg
	fair := time.Duration(c.workers) * c.hold
	var util, wait []bar
	for _, h := range r.handoffs {
		if h.err != nil || len(h.rounds) == 0 {
			continue
		}
		label := h.label
		util = append(util, bar{label, h.med.util, fmt.Sprintf("%.2f", h.med.util), kindOf(h.id)})
		ms := float64(h.med.max) / 1e6
		wait = append(wait, bar{label, ms, fmtDur(h.med.max), kindOf(h.id)})
	}
	var redisOps []bar
	for _, o := range r.ops {
		if (o.section != secRedis && o.section != secRedlock) || o.err != nil || len(o.rounds) == 0 {
			continue
		}
		redisOps = append(redisOps, bar{o.label, o.med / 1e3, fmtNs(o.med), kindOf(o.id)})
	}
	panels := []panel{
		{title: fmt.Sprintf("Contended handoff utilisation, W=%d × R=%d × H=%s (1.0 = lock never idle; target ≥ 0.80)", c.workers, c.turns, c.hold),
			bars: util, fixedMax: 1, target: 0.8, targetLabel: "0.80", tick: func(v float64) string { return fmt.Sprintf("%.1f", v) }},
		{title: fmt.Sprintf("Max wait in the handoff, ms (log scale; target ≤ 1.5·W·H = %s)", time.Duration(1.5*float64(fair))),
			bars: wait, log: true, target: 1.5 * float64(fair) / 1e6, targetLabel: "1.5·W·H", tick: func(v float64) string { return fmt.Sprintf("%g", v) }},
		{title: "Uncontended acquire + release on Redis, µs per op (1 node, then 3 nodes)",
			bars: redisOps, tick: func(v float64) string { return fmt.Sprintf("%g", v) }},
	}

	var body strings.Builder
	y := 56
	for _, p := range panels {
		y = p.render(&body, y) + 24
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgWidth, y, svgWidth, y)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="22" font-size="14" font-weight="bold">lockproof vs peers — %s, %d CPUs, %s</text>`+"\n",
		xmlEscape(r.machine.date), r.machine.cpus, xmlEscape(r.machine.cpuModel))
	for i, k := range []struct{ kind, text string }{{"lockproof", "lockproof"}, {"peer", "peers"}, {"ref", "reference"}} {
		x := 10 + i*100
		fmt.Fprintf(&b, `<rect x="%d" y="32" width="12" height="12" fill="%s"/><text x="%d" y="42">%s</text>`+"\n", x, svgColors[k.kind], x+16, k.text)
	}
	b.WriteString(body.String())
	b.WriteString("</svg>\n")
	return b.String()
}

// render draws p from y down and returns the y below it.
func (p panel) render(b *strings.Builder, y int) int {
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", y+14, xmlEscape(p.title))
	y += 36
	if len(p.bars) == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#666">no data</text>`+"\n", svgLabelW, y+14)
		return y + svgRowH
	}
	lo, hi := 0.0, p.fixedMax
	for _, br := range p.bars {
		hi = math.Max(hi, br.value)
	}
	hi = math.Max(hi, p.target)
	var ticks []float64
	if p.log {
		minV := hi
		for _, br := range p.bars {
			if br.value > 0 {
				minV = math.Min(minV, br.value)
			}
		}
		lo = math.Pow(10, math.Floor(math.Log10(math.Min(minV, p.target))))
		hi = math.Pow(10, math.Ceil(math.Log10(hi)))
		for v := lo; v <= hi*1.0001; v *= 10 {
			ticks = append(ticks, v)
		}
	} else {
		if p.fixedMax == 0 {
			step := niceStep(hi / 5)
			hi = math.Ceil(hi/step) * step
		}
		step := niceStep(hi / 5)
		for v := 0.0; v <= hi*1.0001; v += step {
			ticks = append(ticks, v)
		}
	}
	x := func(v float64) float64 {
		if p.log {
			if v <= lo {
				return svgLabelW
			}
			return svgLabelW + svgBarW*(math.Log10(v)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))
		}
		return svgLabelW + svgBarW*(v-lo)/(hi-lo)
	}
	top, bottom := y, y+len(p.bars)*svgRowH
	for _, t := range ticks {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e2e8f0"/>`+"\n", x(t), top, x(t), bottom)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555" font-size="10">%s</text>`+"\n", x(t), bottom+12, p.tick(t))
	}
	for i, br := range p.bars {
		by := y + i*svgRowH
		fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", svgLabelW-8, by+15, xmlEscape(truncate(br.label, 40)))
		w := math.Max(x(br.value)-svgLabelW, 1)
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", svgLabelW, by+4, w, svgRowH-8, svgColors[br.kind])
		fmt.Fprintf(b, `<text x="%.1f" y="%d" fill="#222">%s</text>`+"\n", svgLabelW+w+5, by+15, xmlEscape(br.text))
	}
	if p.target > 0 {
		tx := x(p.target)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#c53030" stroke-dasharray="4 3"/>`+"\n", tx, top-2, tx, bottom+2)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" fill="#c53030" font-size="10" text-anchor="middle">%s</text>`+"\n", tx, top-5, xmlEscape(p.targetLabel))
	}
	return bottom + 16
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;")

func xmlEscape(s string) string { return xmlEscaper.Replace(s) }
