package emd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/picoflow/picoflow/internal/emd/emdtest"
	"github.com/picoflow/picoflow/internal/emd/superblock"
)

// TestBadInput feeds damaged copies of a real file and files that are not
// EMD at all. Each must give a classified error, never a panic.
func TestBadInput(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile(emdtest.File(t, "velox/example_fei_emd_si.emd"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	corrupt := append([]byte(nil), src...)
	for i := 2048; i < len(corrupt) && i < 200000; i += 97 {
		corrupt[i] ^= 0xA5
	}
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrFormat},
		{"text", []byte("hello, this is not HDF5\n"), ErrFormat},
		{"signature only", []byte(superblock.Signature), ErrFormat},
		{"truncated half", src[:len(src)/2], ErrFormat},
		{"truncated header", src[:600], ErrFormat},
		{"corrupt", corrupt, nil}, // any classified error
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".emd")
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := Open(context.Background(), p, Options{})
			if err == nil {
				// A corrupt file may still open; reading must then fail
				// cleanly or succeed, never panic.
				defer f.Close()
				_ = readAllSignals(f)
				if tc.want != nil {
					t.Fatalf("opened a %s file", tc.name)
				}
				return
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !classified(err) {
				t.Fatalf("unclassified error: %v", err)
			}
		})
	}
}

func classified(err error) bool {
	return errors.Is(err, ErrFormat) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnsupported)
}

// TestSizeLimit refuses datasets above the configured element limit before
// allocating them.
func TestSizeLimit(t *testing.T) {
	t.Parallel()
	f, err := Open(context.Background(), emdtest.File(t, "berkeley/Acquisition_18.emd"), Options{MaxElements: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = f.ReadData(context.Background(), &f.Signals[0])
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("read 1024×1024 with a 1000-element limit: %v, want ErrTooLarge", err)
	}
}

// FuzzOpen mutates real files; opening and reading must never panic and
// every error must be classified.
func FuzzOpen(f *testing.F) {
	for _, n := range []string{"velox/example_fei_emd_si.emd", "velox/fei_example_tem_stack.emd", "berkeley/example_signal.emd"} {
		b, err := os.ReadFile(emdtest.File(f, n))
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 300000 {
			b = b[:300000]
		}
		f.Add(b, uint32(0), byte(0))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, pos uint32, val byte) {
		if len(data) > 0 {
			data = append([]byte(nil), data...)
			data[int(pos)%len(data)] ^= val
		}
		p := filepath.Join(dir, "f.emd")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		file, err := Open(context.Background(), p, Options{MaxElements: 1 << 22})
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified: %v", err)
			}
			return
		}
		defer file.Close()
		if err := readAllSignals(file); err != nil && !classified(err) {
			t.Fatalf("unclassified: %v", err)
		}
	})
}

// readAllSignals reads every signal of f and returns the first error.
func readAllSignals(f *File) error {
	for i := range f.Signals {
		s := &f.Signals[i]
		var err error
		if s.Kind == KindSpectrumImage {
			_, err = f.ReadStream(context.Background(), s)
		} else {
			_, err = f.ReadData(context.Background(), s)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
