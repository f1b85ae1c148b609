package chart

import (
	"bytes"
	"image/color"
	"image/png"
	"testing"
)

func TestRoundLength(t *testing.T) {
	for _, tc := range []struct {
		v     float64
		units string
		n     float64
		label string
	}{
		{51.2, "nm", 50, "50 nm"},
		{19, "nm", 10, "10 nm"},
		{2600, "nm", 2000, "2 µm"},
		{0.37, "µm", 0.2, "0.2 µm"},
	} {
		if n, l := roundLength(tc.v, tc.units); n != tc.n || l != tc.label {
			t.Errorf("%g %s: %g %q, want %g %q", tc.v, tc.units, n, l, tc.n, tc.label)
		}
	}
	for _, tk := range (niceTicks{}).Ticks(0, 12500) {
		if tk.Label != "" && bytes.ContainsRune([]byte(tk.Label), '.') {
			t.Errorf("tick label %q", tk.Label)
		}
	}
}

// TestOverlay: each channel lands in its colour, scaled to its own top.
func TestOverlay(t *testing.T) {
	red, green := make([]float64, 16), make([]float64, 16)
	red[0], green[15] = 5, 500 // different scales, both saturate
	var buf bytes.Buffer
	err := Overlay(&buf, OverlaySpec{Title: "t", NY: 4, NX: 4, X: Calib{Scale: 1, Units: "nm"}, Y: Calib{Scale: 1, Units: "nm"},
		Channels: []Channel{{Name: "Fe K", Data: red, Color: color.NRGBA{255, 0, 0, 255}}, {Name: "Cu K", Data: green, Color: color.NRGBA{0, 255, 0, 255}}}, ClipHigh: 100})
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// Count strongly red and strongly green pixels in the figure: both
	// channels drew their pixel.
	var reds, greens int
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r > 0xE000 && g < 0x2000 && bl < 0x2000 {
				reds++
			}
			if g > 0xE000 && r < 0x2000 && bl < 0x2000 {
				greens++
			}
		}
	}
	if reds < 1000 || greens < 1000 {
		t.Errorf("red pixels %d, green %d", reds, greens)
	}
	if err := Overlay(&buf, OverlaySpec{NY: 4, NX: 4, Channels: make([]Channel, 4)}); err == nil {
		t.Error("four channels accepted")
	}
}
