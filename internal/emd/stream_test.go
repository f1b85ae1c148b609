package emd

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// randomStream builds a multi-detector, multi-frame event stream large
// enough to be split into several parallel parts, with some events outside
// the channel range.
func randomStream(seed uint64) *Stream {
	rng := rand.New(rand.NewPCG(seed, 7))
	st := &Stream{NY: 23, NX: 37, Channels: 100, Frames: 3}
	for range 2 {
		var ev []uint16
		for range st.Frames * st.Pixels() {
			for range rng.IntN(40) {
				ev = append(ev, uint16(rng.IntN(105))) // 100..104 are out of range
			}
			ev = append(ev, gatePulse)
		}
		st.Detectors = append(st.Detectors, ev)
	}
	return st
}

// reference decodes the stream the slow, obvious way.
func reference(st *Stream, r FrameRange, lut []int, n int) (img, spec []uint64, maps [][]uint32, dropped int) {
	img = make([]uint64, st.Pixels())
	spec = make([]uint64, st.Channels)
	maps = make([][]uint32, n)
	for i := range maps {
		maps[i] = make([]uint32, st.Pixels())
	}
	for _, ev := range st.Detectors {
		gates := 0
		for _, v := range ev {
			if v == gatePulse {
				gates++
				continue
			}
			frame, px := gates/st.Pixels(), gates%st.Pixels()
			if frame < r.First || (r.Last > 0 && frame >= r.Last) {
				continue
			}
			if int(v) >= st.Channels {
				dropped++
				continue
			}
			img[px]++
			spec[v]++
			if lut[v] >= 0 {
				maps[lut[v]][px]++
			}
		}
	}
	return img, spec, maps, dropped
}

func TestStreamDecodeMatchesReference(t *testing.T) {
	defer func(m int) { minPart = m }(minPart)
	minPart = 1000
	st := randomStream(1)
	if n := len(st.parts(FrameRange{}, 8)); n < 4 {
		t.Fatalf("stream split into %d parts; the test needs several", n)
	}
	lut := make([]int, st.Channels)
	for c := range lut {
		lut[c] = []int{-1, 0, 1, 2}[c%4]
	}
	for _, r := range []FrameRange{{}, {First: 1}, {First: 1, Last: 2}, {Last: 1}, {First: 2, Last: 3}} {
		img, spec, dropped := st.Sum(r)
		// The labels as a projection: coefficient 1 for a channel's label.
		coef := make([]float32, st.Channels*3)
		for c, l := range lut {
			if l >= 0 {
				coef[c*3+l] = 1
			}
		}
		maps := st.Project(r, coef, 3, 0, st.Channels)
		wImg, wSpec, wMaps, wDropped := reference(st, r, lut, 3)
		if !slices.Equal(img, wImg) || !slices.Equal(spec, wSpec) || dropped != wDropped {
			t.Errorf("frames %+v: Sum differs from reference (dropped %d, want %d)", r, dropped, wDropped)
		}
		for l := range maps {
			for px, v := range maps[l] {
				if uint32(v) != wMaps[l][px] || float32(wMaps[l][px]) != v {
					t.Errorf("frames %+v: map %d differs from reference at pixel %d", r, l, px)
					break
				}
			}
		}
		var walked uint64
		wd := st.Walk(r, func(int, int) { walked++ })
		var total uint64
		for _, v := range wSpec {
			total += v
		}
		if walked != total || wd != wDropped {
			t.Errorf("frames %+v: Walk visited %d events (dropped %d), want %d (%d)", r, walked, wd, total, wDropped)
		}
		if dropped == 0 {
			t.Errorf("frames %+v: no dropped events; the stream should contain some", r)
		}
	}
}
