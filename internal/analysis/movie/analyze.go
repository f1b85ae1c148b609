package movie

import (
	"context"
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Frames is a source of movie frames (emd.FrameReader).
type Frames interface {
	Read(ctx context.Context, t int, dst []float64) error
}

// FrameDetector finds particles in an 8-bit frame. One is used per
// goroutine.
type FrameDetector interface {
	DetectGray(gray []uint8, w, h, index int) []Detection
}

// frameDetector is a detector that reads the frame itself (scaled as the
// video shows it, lo..hi to 0..255, but not clipped or rounded), so it
// measures intensities in the frame's units; it writes the video's 8-bit
// frame in the same pass.
type frameDetector interface {
	DetectFrameGray(frame []float64, lo, hi float64, gray []uint8, w, h, index int) []Detection
}

// Options configure Analyze.
type Options struct {
	// Detector is the classical detector's configuration, used unless
	// NewDetector is set.
	Detector Detector
	// NewDetector makes one detector per worker (e.g. a YOLO model through
	// ONNX Runtime); detectors that are io.Closers are closed at the end.
	NewDetector func() (FrameDetector, error)
	Tracker     Tracker
	// FPS of the videos (default 10).
	FPS float64
	// Preset is the x264 preset of movie.mp4 (default ultrafast: on a
	// noisy 1024² movie veryfast takes 3.4 times as long for a file 17 %
	// smaller, and the raw frames stay in the raw store).
	Preset string
	// AnnotatedSize caps the annotated video's larger side (default 512;
	// -1: no annotated video).
	AnnotatedSize int
	// NoVideo skips the MP4s (detection only).
	NoVideo bool
	// Workers detect in parallel (default: the number of CPUs).
	Workers int
	// Calibration of pixels and frames: the annotated video shows time,
	// frame and a scale bar, the counts plot seconds.
	Calibration Calibration
}

// Product is a file Analyze wrote.
type Product struct {
	Name, Role string
}

// Result is what Analyze found.
type Result struct {
	Frames, Width, Height int
	Counts                []int
	Detections            [][]Detection
	Tracks                []*Track
	// Events are the merges, nucleations and dissolutions, by frame.
	Events []Event
	// Stats are the measurements over the movie.
	Stats    Stats
	Products []Product
	// Timings of the parts, for the record.
	ReadTime, DetectTime time.Duration
}

// MeanCount is the mean number of particles per frame.
func (r *Result) MeanCount() float64 {
	if len(r.Counts) == 0 {
		return 0
	}
	s := 0
	for _, c := range r.Counts {
		s += c
	}
	return float64(s) / float64(len(r.Counts))
}

type slot struct {
	t     int
	f     []float64
	gray  []uint8
	dets  []Detection
	err   error
	ready chan struct{}
}

// Analyze runs the spatiotemporal analysis of n frames of h×w into outDir:
// movie.mp4, annotated.mp4, counts.png, sizes.png, growth.png, tracks.csv,
// tracks.json, events.csv.
func Analyze(ctx context.Context, src Frames, n, h, w int, outDir string, opt Options) (*Result, error) {
	if n <= 0 || h <= 0 || w <= 0 {
		return nil, fmt.Errorf("movie: %d frames of %d×%d", n, h, w)
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	res := &Result{Frames: n, Width: w, Height: h, Counts: make([]int, n), Detections: make([][]Detection, n)}
	var video, annotated *VideoWriter
	var err error
	aw, ah, step := w, h, 1
	if !opt.NoVideo {
		preset := opt.Preset
		if preset == "" {
			preset = "ultrafast"
		}
		if video, err = NewVideoWriter(ctx, filepath.Join(outDir, "movie.mp4"), VideoOptions{Width: w, Height: h, FPS: opt.FPS, Preset: preset}); err != nil {
			return nil, err
		}
		defer func() {
			if video != nil {
				video.Close()
			}
		}()
		if opt.AnnotatedSize >= 0 {
			limit := opt.AnnotatedSize
			if limit == 0 {
				limit = 512
			}
			for max(w, h)/step > limit {
				step++
			}
			aw, ah = w/step, h/step
			// The annotated video is a preview: the fastest preset.
			if annotated, err = NewVideoWriter(ctx, filepath.Join(outDir, "annotated.mp4"), VideoOptions{Width: aw, Height: ah, RGB: true, FPS: opt.FPS, Preset: "ultrafast"}); err != nil {
				return nil, err
			}
			defer func() {
				if annotated != nil {
					annotated.Close()
				}
			}()
		}
	}
	dets := make([]FrameDetector, workers)
	for i := range dets {
		if opt.NewDetector == nil {
			d := opt.Detector
			dets[i] = &d
			continue
		}
		if dets[i], err = opt.NewDetector(); err != nil {
			return nil, fmt.Errorf("movie: detector: %w", err)
		}
		if c, ok := dets[i].(io.Closer); ok {
			defer c.Close()
		}
	}
	// A ring of frame slots: one goroutine reads frames in order into free
	// slots, workers scale and detect, and this goroutine consumes them in
	// order (tracking, video, annotation), returning each slot to the ring.
	ring := make(chan *slot, 2*workers)
	for range 2 * workers {
		ring <- &slot{f: make([]float64, w*h), gray: make([]uint8, w*h)}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ordered := make(chan *slot, 2*workers)
	work := make(chan *slot, 2*workers)
	var wg sync.WaitGroup
	var readTime time.Duration
	wg.Go(func() {
		defer close(ordered)
		defer close(work)
		for t := range n {
			var s *slot
			select {
			case s = <-ring:
			case <-ctx.Done():
				return
			}
			s.t, s.dets, s.err, s.ready = t, nil, nil, make(chan struct{})
			t0 := time.Now()
			s.err = src.Read(ctx, t, s.f)
			readTime += time.Since(t0)
			ordered <- s
			work <- s
		}
	})
	var detectNS sync.Mutex
	var detectTime time.Duration
	for wi := range workers {
		wg.Go(func() {
			d := dets[wi]
			fd, onFrame := d.(frameDetector)
			var sc Scaler
			for s := range work {
				if s.err == nil {
					t0 := time.Now()
					if onFrame {
						lo, hi := sc.Range(s.f)
						s.dets = fd.DetectFrameGray(s.f, lo, hi, s.gray, w, h, s.t)
					} else {
						sc.Scale(s.f, s.gray)
						s.dets = d.DetectGray(s.gray, w, h, s.t)
					}
					detectNS.Lock()
					detectTime += time.Since(t0)
					detectNS.Unlock()
				}
				close(s.ready)
			}
		})
	}
	tracker := opt.Tracker
	tracker.Width, tracker.Height = w, h
	rgb := make([]uint8, aw*ah*3)
	var firstErr error
	for s := range ordered {
		<-s.ready
		if firstErr == nil && s.err != nil {
			firstErr = fmt.Errorf("movie: frame %d: %w", s.t, s.err)
			cancel()
		}
		if firstErr == nil {
			s.dets = tracker.Update(s.t, s.dets)
			res.Detections[s.t] = s.dets
			res.Counts[s.t] = len(s.dets)
			if video != nil {
				if err := video.Write(s.gray); err != nil {
					firstErr = err
					cancel()
				}
			}
			if annotated != nil && firstErr == nil {
				annotate(rgb, s.gray, w, h, step, s.dets)
				drawOverlays(rgb, aw, ah, step, s.t, n, opt.Calibration)
				if err := annotated.Write(rgb); err != nil {
					firstErr = err
					cancel()
				}
			}
		}
		ring <- s
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return nil, firstErr
	}
	res.ReadTime, res.DetectTime = readTime, detectTime
	tracker.Finish(res.Detections)
	for f, dets := range res.Detections {
		res.Counts[f] = len(dets)
	}
	res.Tracks, res.Events = tracker.All, tracker.Events
	res.Stats = res.measure(opt.Calibration)
	if video != nil {
		err := video.Close()
		video = nil
		if err != nil {
			return nil, err
		}
		res.Products = append(res.Products, Product{"movie.mp4", "video"})
	}
	if annotated != nil {
		err := annotated.Close()
		annotated = nil
		if err != nil {
			return nil, err
		}
		res.Products = append(res.Products, Product{"annotated.mp4", "annotated-video"})
	}
	if err := writeCounts(filepath.Join(outDir, "counts.png"), res.Counts, opt.Calibration); err != nil {
		return nil, err
	}
	res.Products = append(res.Products, Product{"counts.png", "counts-plot"})
	if err := writeSizes(filepath.Join(outDir, "sizes.png"), res, opt.Calibration); err != nil {
		return nil, err
	}
	if err := writeGrowth(filepath.Join(outDir, "growth.png"), res, opt.Calibration); err != nil {
		return nil, err
	}
	res.Products = append(res.Products, Product{"sizes.png", "size-distribution"}, Product{"growth.png", "growth-curves"})
	if err := writeTracks(outDir, res, opt.Calibration); err != nil {
		return nil, err
	}
	if err := writeEvents(filepath.Join(outDir, "events.csv"), res.Events, opt.Calibration); err != nil {
		return nil, err
	}
	res.Products = append(res.Products, Product{"tracks.csv", "tracks"}, Product{"tracks.json", "tracks-data"}, Product{"events.csv", "events"})
	return res, nil
}

// trackColours are distinguishable colours for tracks.
var trackColours = [][3]uint8{{255, 80, 80}, {80, 220, 80}, {90, 160, 255}, {255, 200, 40}, {230, 90, 255}, {40, 220, 230}, {255, 140, 40}, {250, 250, 250}}

// annotate downsamples gray by step into rgb and draws each detection's box
// in its track's colour.
func annotate(rgb, gray []uint8, w, h, step int, dets []Detection) {
	aw, ah := w/step, h/step
	for y := range ah {
		for x := range aw {
			var sum int
			for dy := range step {
				row := gray[(y*step+dy)*w+x*step:]
				for dx := range step {
					sum += int(row[dx])
				}
			}
			v := uint8(sum / (step * step))
			i := 3 * (y*aw + x)
			rgb[i], rgb[i+1], rgb[i+2] = v, v, v
		}
	}
	s := float64(step)
	for _, d := range dets {
		c := trackColours[max(d.Track, 0)%len(trackColours)]
		x0, y0 := int((d.X-d.W/2)/s), int((d.Y-d.H/2)/s)
		x1, y1 := int((d.X+d.W/2)/s), int((d.Y+d.H/2)/s)
		for x := x0; x <= x1; x++ {
			put(rgb, aw, ah, x, y0, c)
			put(rgb, aw, ah, x, y1, c)
		}
		for y := y0; y <= y1; y++ {
			put(rgb, aw, ah, x0, y, c)
			put(rgb, aw, ah, x1, y, c)
		}
	}
}

func put(rgb []uint8, w, h, x, y int, c [3]uint8) {
	if x < 0 || y < 0 || x >= w || y >= h {
		return
	}
	i := 3 * (y*w + x)
	rgb[i], rgb[i+1], rgb[i+2] = c[0], c[1], c[2]
}

// writeCounts plots the particles detected per frame against time (s)
// when the frame time is known, else against the frame number.
func writeCounts(path string, counts []int, cal Calibration) error {
	p := plot.New()
	p.Title.Text = "Particles per frame"
	scale := timeAxis(p, cal, len(counts))
	p.Y.Label.Text = "particles detected"
	pts := make(plotter.XYs, len(counts))
	for i, c := range counts {
		pts[i].X, pts[i].Y = float64(i)*scale, float64(c)
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	line.Color = color.NRGBA{47, 95, 179, 255}
	p.Add(line, plotter.NewGrid())
	p.Y.Min = 0
	if err := p.Save(8*vg.Inch, 3.5*vg.Inch, path); err != nil {
		return fmt.Errorf("movie: counts plot: %w", err)
	}
	return nil
}

// Drift estimates the common motion of all particles in pixels per frame:
// the median over tracks of each track's mean displacement per frame
// (random motions cancel; a stage or sample drift does not). n is the
// number of tracks used (those followed for at least 10 frames).
func (r *Result) Drift() (dx, dy float64, n int) {
	var xs, ys []float64
	for _, t := range r.Tracks {
		if len(t.Points) < 10 {
			continue
		}
		a, b := t.Points[0], t.Points[len(t.Points)-1]
		frames := float64(b.Frame - a.Frame)
		xs = append(xs, (b.X-a.X)/frames)
		ys = append(ys, (b.Y-a.Y)/frames)
	}
	if len(xs) == 0 {
		return 0, 0, 0
	}
	slices.Sort(xs)
	slices.Sort(ys)
	return xs[len(xs)/2], ys[len(ys)/2], len(xs)
}
