package main

import (
	"fmt"
	"slices"
)

// figure is one number reported per target and round, computed from that
// round's samples of the target.
type figure struct {
	ID     string
	Title  string
	Table  string // which table it goes in
	Higher bool   // higher is better
	value  func(w *workload, byPhase map[string]sample) (float64, bool)
}

const (
	tableBlobs     = "blobs"
	tableManifests = "manifests"
	tableResources = "resources"
)

const gib = 1 << 30

func figures(w *workload) []figure {
	rate := func(ph string, f func(s sample) float64) func(*workload, map[string]sample) (float64, bool) {
		return func(_ *workload, m map[string]sample) (float64, bool) {
			s, ok := m[ph]
			if !ok || s.Err != "" || s.Seconds <= 0 {
				return 0, false
			}
			return f(s), true
		}
	}
	mbs := func(s sample) float64 { return float64(s.Bytes) / s.Seconds / 1e6 }
	ops := func(s sample) float64 { return float64(s.Ops) / s.Seconds }
	p50 := func(s sample) float64 { return s.P50ms }
	p99 := func(s sample) float64 { return s.P99ms }
	rss := func(s sample) float64 { return float64(s.PeakRSS) / (1 << 20) }
	cpuPerGiB := func(s sample) float64 { return s.ServerCPU / (float64(s.Bytes) / gib) }
	big := fmt.Sprintf("%s in %d layers", size(w.big.layerBytes()), len(w.big.layers))
	small := fmt.Sprintf("%d × %s", len(w.small.layers), size(w.small.layers[0].size))
	return []figure{
		{ID: "push_big_mbps", Title: "push " + big + ", MB/s", Table: tableBlobs, Higher: true, value: rate(phasePushBig, mbs)},
		{ID: "pull_big_mbps", Title: "pull " + big + ", MB/s", Table: tableBlobs, Higher: true, value: rate(phasePullBig, mbs)},
		{ID: "push_small_mbps", Title: "push " + small + ", MB/s", Table: tableBlobs, Higher: true, value: rate(phasePushSmall, mbs)},
		{ID: "pull_small_blobs", Title: "pull " + small + ", blobs/s", Table: tableBlobs, Higher: true, value: rate(phasePullSmall, ops)},
		{ID: "head_rps", Title: "HEAD req/s", Table: tableManifests, Higher: true, value: rate(phaseHead, ops)},
		{ID: "head_p50_ms", Title: "HEAD p50 ms", Table: tableManifests, value: rate(phaseHead, p50)},
		{ID: "head_p99_ms", Title: "HEAD p99 ms", Table: tableManifests, value: rate(phaseHead, p99)},
		{ID: "get_rps", Title: "GET req/s", Table: tableManifests, Higher: true, value: rate(phaseGet, ops)},
		{ID: "get_p50_ms", Title: "GET p50 ms", Table: tableManifests, value: rate(phaseGet, p50)},
		{ID: "get_p99_ms", Title: "GET p99 ms", Table: tableManifests, value: rate(phaseGet, p99)},
		{ID: "rss_push_big_mib", Title: "peak RSS, big push, MiB", Table: tableResources, value: rate(phasePushBig, rss)},
		{ID: "rss_round_mib", Title: "peak RSS, whole round, MiB", Table: tableResources, value: func(_ *workload, m map[string]sample) (float64, bool) {
			var peak float64
			for _, s := range m {
				if s.Err != "" {
					return 0, false
				}
				peak = max(peak, rss(s))
			}
			return peak, len(m) == len(phases)
		}},
		{ID: "cpu_push_big_s_per_gib", Title: "server CPU s/GiB, big push", Table: tableResources, value: rate(phasePushBig, cpuPerGiB)},
		{ID: "cpu_pull_big_s_per_gib", Title: "server CPU s/GiB, big pull", Table: tableResources, value: rate(phasePullBig, cpuPerGiB)},
	}
}

// stat is the median, minimum and maximum of a figure over the rounds.
type stat struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Values []float64 `json:"values"` // per round, in round order
}

func newStat(v []float64) (stat, bool) {
	if len(v) == 0 {
		return stat{}, false
	}
	return stat{Median: median(v), Min: slices.Min(v), Max: slices.Max(v), Values: v}, true
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// results are the figures of every target, and of every Coffer variant
// relative to the peer, computed per round and then summarised.
type results struct {
	Figures []figureResult `json:"figures"`
}

type figureResult struct {
	Figure string          `json:"figure"`
	Title  string          `json:"title"`
	Values map[string]stat `json:"values"`           // by target name
	Ratios map[string]stat `json:"ratios,omitempty"` // by Coffer target name: Coffer/peer, per round then median
}

// compute turns samples into figures. A ratio is taken within each round
// (Coffer and the peer ran side by side) and only then summarised.
func compute(w *workload, samples []sample, targets []*target, peer *target, rounds int) results {
	// A phase's busy samples count only if it never ran clean.
	hasClean := map[string]bool{}
	for _, s := range samples {
		if !s.Busy && s.Err == "" {
			hasClean[s.Phase] = true
		}
	}
	perRound := make(map[string]map[int]map[string]sample) // target -> round -> phase
	for _, s := range samples {
		if s.Busy && hasClean[s.Phase] {
			continue
		}
		if perRound[s.Target] == nil {
			perRound[s.Target] = make(map[int]map[string]sample)
		}
		if perRound[s.Target][s.Round] == nil {
			perRound[s.Target][s.Round] = make(map[string]sample)
		}
		perRound[s.Target][s.Round][s.Phase] = s
	}
	var out results
	for _, f := range figures(w) {
		fr := figureResult{Figure: f.ID, Title: f.Title, Values: map[string]stat{}, Ratios: map[string]stat{}}
		val := func(t string, r int) (float64, bool) {
			m, ok := perRound[t][r]
			if !ok {
				return 0, false
			}
			return f.value(w, m)
		}
		for _, t := range targets {
			var v []float64
			for r := 1; r <= rounds; r++ {
				if x, ok := val(t.Name, r); ok {
					v = append(v, x)
				}
			}
			if st, ok := newStat(v); ok {
				fr.Values[t.Name] = st
			}
			if !t.Coffer || peer == nil {
				continue
			}
			var ratios []float64
			for r := 1; r <= rounds; r++ {
				c, ok1 := val(t.Name, r)
				p, ok2 := val(peer.Name, r)
				if ok1 && ok2 && p > 0 {
					ratios = append(ratios, c/p)
				}
			}
			if st, ok := newStat(ratios); ok {
				fr.Ratios[t.Name] = st
			}
		}
		out.Figures = append(out.Figures, fr)
	}
	return out
}

func (r results) get(figure string) figureResult {
	for _, f := range r.Figures {
		if f.Figure == figure {
			return f
		}
	}
	return figureResult{}
}

// goal is a target a figure must reach on the full run on the reference
// machine (2 cores), from the issue that set it.
type goal struct {
	Figure string  `json:"figure"`
	Ratio  bool    `json:"ratio"` // judged on the Coffer/peer ratio
	AtMost bool    `json:"at_most"`
	Value  float64 `json:"value"`
	Issue  int     `json:"issue"`
	Text   string  `json:"text"`
}

var goals = []goal{
	{Figure: "push_big_mbps", Ratio: true, Value: 1.1, Issue: 10, Text: "≥ 1.1× distribution"},
	{Figure: "push_big_mbps", Ratio: true, Value: 1.0, Issue: 2, Text: "≥ 1.0× distribution"},
	{Figure: "pull_big_mbps", Ratio: true, Value: 1.0, Issue: 10, Text: "≥ 1.0× distribution"},
	{Figure: "pull_big_mbps", Ratio: true, Value: 0.9, Issue: 2, Text: "≥ 0.9× distribution"},
	{Figure: "push_small_mbps", Value: 29.6, Issue: 10, Text: "≥ 29.6 MB/s (1.5× zot's 19.7)"},
	{Figure: "pull_small_blobs", Value: 2400, Issue: 10, Text: "≥ 2,400 blobs/s"},
	{Figure: "head_rps", Value: 8000, Issue: 10, Text: "≥ 8,000 req/s"},
	{Figure: "head_p99_ms", AtMost: true, Value: 10, Issue: 10, Text: "≤ 10 ms"},
	{Figure: "head_rps", Ratio: true, Value: 1.5, Issue: 2, Text: "≥ 1.5× distribution"},
	{Figure: "rss_push_big_mib", AtMost: true, Value: 64, Issue: 10, Text: "≤ 64 MiB"},
	{Figure: "rss_push_big_mib", AtMost: true, Value: 100, Issue: 2, Text: "≤ 100 MiB"},
}

// verdict judges a goal on a target's median; ok is false when there is
// nothing to judge (no data, or no peer for a ratio).
func (g goal) verdict(r results, target string) (value float64, met, ok bool) {
	fr := r.get(g.Figure)
	st, ok := fr.Values[target]
	if g.Ratio {
		st, ok = fr.Ratios[target]
	}
	if !ok {
		return 0, false, false
	}
	if g.AtMost {
		return st.Median, st.Median <= g.Value, true
	}
	return st.Median, st.Median >= g.Value, true
}
