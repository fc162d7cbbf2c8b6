package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// workload is what every registry is given, identical for all: the big
// image, the image of many small layers and the request counts.
type workload struct {
	big, small  *testImage
	requests    int // manifest HEADs (and GETs) per round
	concurrency int // parallel manifest requests
}

// repos are the repositories the phases push to, under namespace ns.
func (w *workload) repos(ns string) []string {
	return []string{ns + "/big", ns + "/small"}
}

// phase is one timed step of a round. prepare runs untimed just before;
// run is timed. Phases run in order and later ones use what earlier ones
// pushed.
type phase struct {
	ID      string
	Title   string
	prepare func(ctx context.Context, w *workload, c *client) error
	run     func(ctx context.Context, w *workload, c *client) result
}

// result is what a phase did: bytes moved, operations (blobs or requests)
// and, for request phases, each request's latency.
type result struct {
	bytes int64
	ops   int
	lat   []time.Duration
	err   error
}

const (
	phasePushBig   = "push-big"
	phasePullBig   = "pull-big"
	phasePushSmall = "push-small"
	phasePullSmall = "pull-small"
	phaseHead      = "head"
	phaseGet       = "get"
)

var phases = []phase{
	{ID: phasePushBig, Title: "push big image", run: func(ctx context.Context, w *workload, c *client) result {
		return pushImage(c, "big", w.big)
	}},
	{ID: phasePullBig, Title: "pull big image", run: func(ctx context.Context, w *workload, c *client) result {
		return pullImage(c, "big", w.big)
	}},
	{ID: phasePushSmall, Title: "push small layers", run: func(ctx context.Context, w *workload, c *client) result {
		return pushImage(c, "small", w.small)
	}},
	{ID: phasePullSmall, Title: "pull small layers", run: func(ctx context.Context, w *workload, c *client) result {
		return pullImage(c, "small", w.small)
	}},
	{ID: phaseHead, Title: "manifest HEAD", prepare: warmUp(http.MethodHead), run: manifestLoad(http.MethodHead)},
	{ID: phaseGet, Title: "manifest GET", prepare: warmUp(http.MethodGet), run: manifestLoad(http.MethodGet)},
}

func pushImage(c *client, repo string, img *testImage) result {
	ref, err := c.ref(repo, "v1")
	if err != nil {
		return result{err: err}
	}
	if err := c.push(ref, img); err != nil {
		return result{err: err}
	}
	return result{bytes: img.bytes, ops: len(img.layers)}
}

func pullImage(c *client, repo string, img *testImage) result {
	ref, err := c.ref(repo, "v1")
	if err != nil {
		return result{err: err}
	}
	n, err := c.pull(ref, img)
	if err == nil && n != img.bytes {
		err = fmt.Errorf("pull %s: %d bytes, pushed %d", ref, n, img.bytes)
	}
	return result{bytes: n, ops: len(img.layers), err: err}
}

// warmUp opens the client's connections (one per worker) before the timed
// requests, so that the figure is the steady state, for every registry.
func warmUp(method string) func(ctx context.Context, w *workload, c *client) error {
	return func(ctx context.Context, w *workload, c *client) error {
		ref, err := c.ref("big", "v1")
		if err != nil {
			return err
		}
		_, err = c.load(ctx, method, ref, w.big.digest, 4*w.concurrency, w.concurrency)
		return err
	}
}

func manifestLoad(method string) func(ctx context.Context, w *workload, c *client) result {
	return func(ctx context.Context, w *workload, c *client) result {
		ref, err := c.ref("big", "v1")
		if err != nil {
			return result{err: err}
		}
		lat, err := c.load(ctx, method, ref, w.big.digest, w.requests, w.concurrency)
		res := result{ops: w.requests, lat: lat, err: err}
		if method == http.MethodGet {
			res.bytes = int64(len(w.big.manifest)) * int64(w.requests)
		}
		return res
	}
}
