package hyperspectral

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// npyArray is one array of an uncompressed .npz file: its shape and its
// values as float64 (uint8, uint16, int64, float32 and float64 are read).
type npyArray struct {
	Shape []int
	Data  []float64
	Raw   []byte // the bytes of a uint8 array
}

var npyShape = regexp.MustCompile(`'shape': \(([0-9, ]*)\)`)
var npyDescr = regexp.MustCompile(`'descr': '([<>|])([a-z])([0-9]+)'`)

// readNPZ reads the arrays of an .npz file written by numpy.savez.
func readNPZ(path string) (map[string]*npyArray, error) {
	z, err := zip.OpenReader(path)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	out := map[string]*npyArray{}
	for _, f := range z.File {
		r, err := f.Open()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return nil, err
		}
		if len(b) < 10 || string(b[1:6]) != "NUMPY" {
			return nil, fmt.Errorf("%s: not an npy array", f.Name)
		}
		hl := int(binary.LittleEndian.Uint16(b[8:10]))
		off := 10
		if b[6] >= 2 {
			hl, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
		}
		header := string(b[off : off+hl])
		body := b[off+hl:]
		a := &npyArray{}
		for _, s := range strings.Split(npyShape.FindStringSubmatch(header)[1], ",") {
			if s = strings.TrimSpace(s); s != "" {
				n, _ := strconv.Atoi(s)
				a.Shape = append(a.Shape, n)
			}
		}
		d := npyDescr.FindStringSubmatch(header)
		if d == nil || strings.Contains(header, "'fortran_order': True") {
			return nil, fmt.Errorf("%s: unsupported npy header %q", f.Name, header)
		}
		size, _ := strconv.Atoi(d[3])
		kind := d[2] + d[3]
		n := len(body) / size
		a.Data = make([]float64, n)
		for i := range n {
			v := body[i*size:]
			switch kind {
			case "u1":
				a.Data[i] = float64(v[0])
			case "u2":
				a.Data[i] = float64(binary.LittleEndian.Uint16(v))
			case "i8":
				a.Data[i] = float64(int64(binary.LittleEndian.Uint64(v)))
			case "f4":
				a.Data[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(v)))
			case "f8":
				a.Data[i] = math.Float64frombits(binary.LittleEndian.Uint64(v))
			default:
				return nil, fmt.Errorf("%s: dtype %s", f.Name, kind)
			}
		}
		if kind == "u1" {
			a.Raw = body
		}
		out[strings.TrimSuffix(f.Name, ".npy")] = a
	}
	return out, nil
}
