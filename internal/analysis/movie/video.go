package movie

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// ErrNoFFmpeg means the ffmpeg binary is not installed.
var ErrNoFFmpeg = errors.New("ffmpeg not found (Debian: apt-get install ffmpeg)")

// VideoWriter encodes frames to H.264 MP4 (yuv420p, moov atom first so it
// streams in a browser) through an ffmpeg process fed on its stdin.
type VideoWriter struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	stderr bytes.Buffer
	frame  int
	path   string
}

// VideoOptions configure a VideoWriter.
type VideoOptions struct {
	Width, Height int
	// RGB selects 24-bit colour frames; otherwise frames are 8-bit grey.
	RGB bool
	// FPS is the playback rate (default 10).
	FPS float64
	// Preset is the x264 preset (default veryfast).
	Preset string
	// FFmpeg is the binary (default "ffmpeg" on PATH).
	FFmpeg string
}

// NewVideoWriter starts ffmpeg writing path.
func NewVideoWriter(ctx context.Context, path string, o VideoOptions) (*VideoWriter, error) {
	bin := o.FFmpeg
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("ffmpeg"); err != nil {
			return nil, ErrNoFFmpeg
		}
	}
	fps := o.FPS
	if fps <= 0 {
		fps = 10
	}
	preset := o.Preset
	if preset == "" {
		preset = "veryfast"
	}
	pix := "gray"
	if o.RGB {
		pix = "rgb24"
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "rawvideo", "-pix_fmt", pix, "-s", fmt.Sprintf("%dx%d", o.Width, o.Height), "-r", strconv.FormatFloat(fps, 'f', -1, 64), "-i", "pipe:0",
		// yuv420p needs even sizes.
		"-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
		"-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p", "-movflags", "+faststart", path}
	w := &VideoWriter{cmd: exec.CommandContext(ctx, bin, args...), path: path}
	w.cmd.Stderr = &w.stderr
	in, err := w.cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("video %s: %w", path, err)
	}
	w.in = in
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("video %s: %w", path, err)
	}
	return w, nil
}

// Write appends one frame (W*H bytes, or W*H*3 for RGB).
func (w *VideoWriter) Write(frame []byte) error {
	if _, err := w.in.Write(frame); err != nil {
		return fmt.Errorf("video %s frame %d: %w (%s)", w.path, w.frame, err, strings.TrimSpace(w.stderr.String()))
	}
	w.frame++
	return nil
}

// Close finishes the file.
func (w *VideoWriter) Close() error {
	w.in.Close()
	if err := w.cmd.Wait(); err != nil {
		return fmt.Errorf("video %s: ffmpeg: %w: %s", w.path, err, strings.TrimSpace(w.stderr.String()))
	}
	return nil
}

// FFmpegVersion is the version the ffmpeg on PATH reports ("5.1.8-0+deb12u1"),
// or "" when there is none.
func FFmpegVersion() string {
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		return ""
	}
	out, err := exec.Command(bin, "-hide_banner", "-version").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) >= 3 && f[0] == "ffmpeg" && f[1] == "version" {
		return f[2]
	}
	return ""
}
