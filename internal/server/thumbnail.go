package server

import (
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"

	"golang.org/x/image/draw"

	"github.com/picoflow/picoflow/internal/catalog"
)

// ThumbnailWidth is the largest side of a record's thumbnail, in pixels
// (search results show them at 96 px; twice that for sharp screens).
const ThumbnailWidth = 192

// thumbnail returns the path of a record's thumbnail (its intensity map or
// preview image scaled down, a JPEG), made on first use and kept beside the
// run's products. ok is false when the record has no picture.
func (s *Server) thumbnail(ctx context.Context, e *catalog.Entry) (path string, ok bool, err error) {
	var src string
	for _, role := range []string{"intensity-map", "image-preview"} {
		for _, f := range e.Record.Files {
			if f.Role == role && src == "" && filepath.Ext(f.Name) == ".png" {
				src = f.Name
			}
		}
	}
	if src == "" || e.RunID == "" {
		return "", false, nil
	}
	dir := s.runProducts(e.RunID)
	path = filepath.Join(dir, fmt.Sprintf(".thumb-%d-%s.jpg", ThumbnailWidth, filepath.Base(src)))
	if _, err := os.Stat(path); err == nil {
		return path, true, nil
	}
	f, err := os.Open(filepath.Join(dir, filepath.Base(src)))
	if err != nil {
		return "", false, fmt.Errorf("thumbnail: %w", err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > 64<<20 {
		return "", false, fmt.Errorf("thumbnail of %s: not a picture we scale (%v)", src, err)
	}
	f.Seek(0, 0)
	img, err := png.Decode(f)
	if err != nil {
		return "", false, fmt.Errorf("thumbnail of %s: %w", src, err)
	}
	w, h := cfg.Width, cfg.Height
	scale := min(1, float64(ThumbnailWidth)/float64(max(w, h)))
	tw, th := max(1, int(float64(w)*scale+0.5)), max(1, int(float64(h)*scale+0.5))
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
	tmp, err := os.CreateTemp(dir, ".thumb-*.tmp")
	if err != nil {
		return "", false, fmt.Errorf("thumbnail: %w", err)
	}
	defer os.Remove(tmp.Name())
	// JPEG: a figure scaled down is smooth, which PNG stores badly.
	if err := jpeg.Encode(tmp, dst, &jpeg.Options{Quality: 85}); err != nil {
		tmp.Close()
		return "", false, fmt.Errorf("thumbnail: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", false, fmt.Errorf("thumbnail: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", false, fmt.Errorf("thumbnail: %w", err)
	}
	return path, true, nil
}
