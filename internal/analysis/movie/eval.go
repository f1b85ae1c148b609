package movie

import (
	"math"
	"slices"
)

// Box is a ground-truth particle box in one frame.
type Box struct{ X, Y, W, H float64 }

// Scores compares detections with ground truth.
type Scores struct {
	TP, FP, FN        int
	Precision, Recall float64
	MAP50, MAP50to95  float64
	MeanCentreErrorPx float64
}

// Evaluate matches detections to truth frame by frame: for precision and
// recall, one-to-one by minimum total centre distance within tol pixels;
// for mAP, by IoU at thresholds 0.50, 0.55, ..., 0.95 (COCO style,
// 101-point interpolation), detections ranked by score.
func Evaluate(dets [][]Detection, truth [][]Box, tol float64) Scores {
	var s Scores
	var errSum float64
	for f := range truth {
		var d []Detection
		if f < len(dets) {
			d = dets[f]
		}
		n, m := len(truth[f]), len(d)
		pairs := match(n, m, tol, func(i, j int) float64 { return math.Hypot(truth[f][i].X-d[j].X, truth[f][i].Y-d[j].Y) })
		matched := len(pairs)
		for _, p := range pairs {
			errSum += p.d
		}
		s.TP += matched
		s.FP += m - matched
		s.FN += n - matched
	}
	if s.TP+s.FP > 0 {
		s.Precision = float64(s.TP) / float64(s.TP+s.FP)
	}
	if s.TP+s.FN > 0 {
		s.Recall = float64(s.TP) / float64(s.TP+s.FN)
	}
	if s.TP > 0 {
		s.MeanCentreErrorPx = errSum / float64(s.TP)
	}
	var sum float64
	for k := 0; k < 10; k++ {
		ap := averagePrecision(dets, truth, 0.5+0.05*float64(k))
		if k == 0 {
			s.MAP50 = ap
		}
		sum += ap
	}
	s.MAP50to95 = sum / 10
	return s
}

func iou(a Box, d Detection) float64 {
	ax0, ay0, ax1, ay1 := a.X-a.W/2, a.Y-a.H/2, a.X+a.W/2, a.Y+a.H/2
	bx0, by0, bx1, by1 := d.X-d.W/2, d.Y-d.H/2, d.X+d.W/2, d.Y+d.H/2
	iw := math.Min(ax1, bx1) - math.Max(ax0, bx0)
	ih := math.Min(ay1, by1) - math.Max(ay0, by0)
	if iw <= 0 || ih <= 0 {
		return 0
	}
	inter := iw * ih
	return inter / (a.W*a.H + d.W*d.H - inter)
}

func averagePrecision(dets [][]Detection, truth [][]Box, thr float64) float64 {
	type scored struct {
		f int
		d Detection
	}
	var all []scored
	total := 0
	for f := range truth {
		total += len(truth[f])
		if f < len(dets) {
			for _, d := range dets[f] {
				all = append(all, scored{f, d})
			}
		}
	}
	if total == 0 {
		return 0
	}
	slices.SortStableFunc(all, func(a, b scored) int {
		switch {
		case a.d.Score > b.d.Score:
			return -1
		case a.d.Score < b.d.Score:
			return 1
		}
		return 0
	})
	used := make([][]bool, len(truth))
	for f := range truth {
		used[f] = make([]bool, len(truth[f]))
	}
	prec := make([]float64, len(all))
	rec := make([]float64, len(all))
	tp := 0
	for i, s := range all {
		best, bi := thr, -1
		for j, b := range truth[s.f] {
			if used[s.f][j] {
				continue
			}
			if v := iou(b, s.d); v >= best {
				best, bi = v, j
			}
		}
		if bi >= 0 {
			used[s.f][bi] = true
			tp++
		}
		prec[i] = float64(tp) / float64(i+1)
		rec[i] = float64(tp) / float64(total)
	}
	// Precision envelope, then 101-point interpolation.
	for i := len(prec) - 2; i >= 0; i-- {
		prec[i] = math.Max(prec[i], prec[i+1])
	}
	var ap float64
	for k := 0; k <= 100; k++ {
		r := float64(k) / 100
		i, _ := slices.BinarySearch(rec, r)
		if i < len(prec) {
			ap += prec[i]
		}
	}
	return ap / 101
}
