package movie

import (
	"math"
	"slices"
)

// TrackPoint is a track's position in one frame.
type TrackPoint struct {
	Frame int     `json:"frame"`
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
}

// Track is one particle followed through the movie.
type Track struct {
	ID     int          `json:"id"`
	Points []TrackPoint `json:"points"`
	missed int
}

// Tracker links detections frame to frame: each frame's detections are
// assigned to the live tracks by minimum total distance (Hungarian
// algorithm), within MaxDistance; the rest start tracks, and tracks unseen
// for more than MaxGap frames end.
type Tracker struct {
	// MaxDistance in pixels (default 8).
	MaxDistance float64
	// MaxGap in frames (default 3).
	MaxGap int
	live   []*Track
	All    []*Track
}

// Update assigns frame's detections to tracks, setting their Track field.
func (t *Tracker) Update(frame int, dets []Detection) {
	if t.MaxDistance == 0 {
		t.MaxDistance = 8
	}
	if t.MaxGap == 0 {
		t.MaxGap = 3
	}
	n, m := len(t.live), len(dets)
	assigned := make([]bool, m)
	for _, p := range match(n, m, t.MaxDistance, func(i, j int) float64 {
		last := t.live[i].Points[len(t.live[i].Points)-1]
		return math.Hypot(dets[j].X-last.X, dets[j].Y-last.Y)
	}) {
		tr := t.live[p.i]
		tr.Points = append(tr.Points, TrackPoint{Frame: frame, X: dets[p.j].X, Y: dets[p.j].Y})
		tr.missed = -1
		dets[p.j].Track = tr.ID
		assigned[p.j] = true
	}
	var live []*Track
	for _, tr := range t.live {
		if tr.missed++; tr.missed <= t.MaxGap {
			live = append(live, tr)
		}
	}
	for j := range dets {
		if !assigned[j] {
			tr := &Track{ID: len(t.All), Points: []TrackPoint{{Frame: frame, X: dets[j].X, Y: dets[j].Y}}}
			dets[j].Track = tr.ID
			t.All = append(t.All, tr)
			live = append(live, tr)
		}
	}
	t.live = live
}

// pair is a matched (row, column) with its distance.
type pair struct {
	i, j int
	d    float64
}

// match pairs n rows with m columns one to one, minimising the total
// distance, among pairs closer than maxDist.
func match(n, m int, maxDist float64, dist func(i, j int) float64) []pair {
	if n == 0 || m == 0 {
		return nil
	}
	if max(n, m) > 400 {
		return greedy(n, m, maxDist, dist)
	}
	size := max(n, m)
	const far = 1e9
	cost := make([][]float64, size)
	for i := range cost {
		cost[i] = make([]float64, size)
		for j := range cost[i] {
			cost[i][j] = far
			if i < n && j < m {
				if d := dist(i, j); d <= maxDist {
					cost[i][j] = d
				}
			}
		}
	}
	var out []pair
	for i, j := range hungarian(cost) {
		if cost[i][j] < far {
			out = append(out, pair{i, j, cost[i][j]})
		}
	}
	return out
}

// greedy pairs the closest first: for crowded frames, where the exact
// O(n³) assignment would take too long.
func greedy(n, m int, maxDist float64, dist func(i, j int) float64) []pair {
	var all []pair
	for i := range n {
		for j := range m {
			if d := dist(i, j); d <= maxDist {
				all = append(all, pair{i, j, d})
			}
		}
	}
	slices.SortFunc(all, func(a, b pair) int {
		switch {
		case a.d < b.d:
			return -1
		case a.d > b.d:
			return 1
		}
		return 0
	})
	usedI, usedJ := make([]bool, n), make([]bool, m)
	var out []pair
	for _, p := range all {
		if !usedI[p.i] && !usedJ[p.j] {
			usedI[p.i], usedJ[p.j] = true, true
			out = append(out, p)
		}
	}
	return out
}

// hungarian solves the square assignment problem (minimum cost) and
// returns the column assigned to each row. O(n³) (Kuhn-Munkres with
// potentials).
func hungarian(cost [][]float64) []int {
	n := len(cost)
	inf := math.Inf(1)
	u, v := make([]float64, n+1), make([]float64, n+1)
	p, way := make([]int, n+1), make([]int, n+1)
	for i := 1; i <= n; i++ {
		p[0] = i
		j0 := 0
		minv := make([]float64, n+1)
		used := make([]bool, n+1)
		for j := range minv {
			minv[j] = inf
		}
		for {
			used[j0] = true
			i0, delta, j1 := p[j0], inf, 0
			for j := 1; j <= n; j++ {
				if used[j] {
					continue
				}
				cur := cost[i0-1][j-1] - u[i0] - v[j]
				if cur < minv[j] {
					minv[j], way[j] = cur, j0
				}
				if minv[j] < delta {
					delta, j1 = minv[j], j
				}
			}
			for j := 0; j <= n; j++ {
				if used[j] {
					u[p[j]] += delta
					v[j] -= delta
				} else {
					minv[j] -= delta
				}
			}
			j0 = j1
			if p[j0] == 0 {
				break
			}
		}
		for j0 != 0 {
			j1 := way[j0]
			p[j0] = p[j1]
			j0 = j1
		}
	}
	out := make([]int, n)
	for j := 1; j <= n; j++ {
		if p[j] > 0 {
			out[p[j]-1] = j - 1
		}
	}
	return out
}
