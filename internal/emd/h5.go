package emd

import (
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/scigolib/hdf5"
)

// h5file is the project's narrow view of an HDF5 file. It wraps the pure-Go
// scigolib reader, turns its panics on malformed input into errors and checks
// sizes before any allocation, so a hostile file cannot take the process down.
type h5file struct {
	f        *hdf5.File
	datasets map[string]*hdf5.Dataset
	groups   map[string]*hdf5.Group
	order    []string // object paths in walk order (groups end with "/")
	path     string
	size     int64 // file size in bytes
	maxElems int64
}

// dsInfo is what the reader knows about a dataset before reading it.
type dsInfo struct {
	Class    string // integer, float, string, compound, vlen, ...
	ElemSize int
	Shape    []int
	Layout   string // contiguous, chunked, compact, ...
	// Extent is the stored byte size of a contiguous layout, or the element
	// count of one chunk of a chunked layout.
	Extent uint64
	// Address is the file offset of contiguous data.
	Address uint64
}

// Elems returns the number of elements of the dataset (1 for a scalar).
func (d dsInfo) Elems() int64 {
	n := int64(1)
	for _, s := range d.Shape {
		n *= int64(s)
	}
	return n
}

func openH5(path string, size, maxElems int64) (h *h5file, err error) {
	defer recoverInto(&err, "open hdf5")
	f, err := hdf5.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	h = &h5file{
		f:        f,
		datasets: map[string]*hdf5.Dataset{},
		groups:   map[string]*hdf5.Group{},
		maxElems: maxElems,
		size:     size,
		path:     path,
	}
	f.Walk(func(p string, o hdf5.Object) {
		switch v := o.(type) {
		case *hdf5.Dataset:
			h.datasets[p] = v
			h.order = append(h.order, p)
		case *hdf5.Group:
			h.groups[p] = v
			h.order = append(h.order, p)
		}
	})
	return h, nil
}

func (h *h5file) Close() error {
	if h == nil || h.f == nil {
		return nil
	}
	err := h.f.Close()
	h.f = nil
	return err
}

// recoverInto converts a panic inside the HDF5 library into an error.
func recoverInto(err *error, op string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: %w: malformed file (%v)", op, ErrFormat, r)
	}
}

var (
	infoRe  = regexp.MustCompile(`^Dataset: (\S+) \(size=(\d+) bytes\), (.*?), (contiguous|chunked|compact|unknown|virtual)(.*)$`)
	shapeRe = regexp.MustCompile(`\d+`)
)

// info parses the dataset description of the underlying library; it is the
// only way it exposes shape and type without reading the values.
func (h *h5file) info(path string) (di dsInfo, err error) {
	defer recoverInto(&err, "inspect "+path)
	ds, ok := h.datasets[path]
	if !ok {
		return dsInfo{}, fmt.Errorf("dataset %q: %w", path, ErrNotFound)
	}
	s, err := ds.Info()
	if err != nil {
		return dsInfo{}, fmt.Errorf("inspect %q: %w: %w", path, ErrFormat, err)
	}
	return parseInfo(s)
}

func parseInfo(s string) (dsInfo, error) {
	m := infoRe.FindStringSubmatch(s)
	if m == nil {
		return dsInfo{}, fmt.Errorf("%w: unexpected dataset description %q", ErrFormat, s)
	}
	di := dsInfo{Class: m[1]}
	if m[1] == "class_9" {
		di.Class = "vlen"
	}
	di.ElemSize, _ = strconv.Atoi(m[2])
	space := m[3]
	switch {
	case space == "scalar":
	case strings.Contains(space, "array"):
		nums := shapeRe.FindAllString(space[strings.Index(space, "["):], -1)
		for _, n := range nums {
			v, err := strconv.ParseUint(n, 10, 63)
			if err != nil || v > math.MaxInt32*4 {
				return dsInfo{}, fmt.Errorf("%w: dimension %s out of range", ErrFormat, n)
			}
			di.Shape = append(di.Shape, int(v))
		}
	default:
		return dsInfo{}, fmt.Errorf("%w: unsupported dataspace %q", ErrFormat, space)
	}
	di.Layout = m[4]
	nums := shapeRe.FindAllString(m[5], -1)
	switch di.Layout {
	case "contiguous":
		// " (address=0x1A2B, size=4096)": the regexp sees the hex digits too.
		if i := strings.Index(m[5], "address=0x"); i >= 0 {
			hex := m[5][i+len("address=0x"):]
			if j := strings.IndexByte(hex, ','); j > 0 {
				di.Address, _ = strconv.ParseUint(hex[:j], 16, 64)
			}
		}
		if len(nums) > 0 {
			di.Extent, _ = strconv.ParseUint(nums[len(nums)-1], 10, 64)
		}
	case "chunked":
		// " (chunks=[c0 c1 ... elemsize])": the last number is the element size.
		di.Extent = 1
		for i, n := range nums {
			if i == len(nums)-1 && len(nums) > 1 {
				break
			}
			v, err := strconv.ParseUint(n, 10, 32)
			if err != nil || v == 0 {
				return dsInfo{}, fmt.Errorf("%w: chunk dimension %s", ErrFormat, n)
			}
			di.Extent *= v
			if di.Extent > 1<<32 {
				return dsInfo{}, fmt.Errorf("%w: chunk of more than 2^32 elements", ErrFormat)
			}
		}
	}
	return di, nil
}

// checkSize refuses datasets whose element count exceeds the reader's limit.
func (h *h5file) checkSize(path string, di dsInfo) error {
	n := di.Elems()
	for _, s := range di.Shape {
		if s < 0 {
			return fmt.Errorf("dataset %q: %w: negative dimension", path, ErrFormat)
		}
	}
	if n > h.maxElems || n < 0 {
		return fmt.Errorf("dataset %q has %d elements (shape %v): %w (limit %d)", path, n, di.Shape, ErrTooLarge, h.maxElems)
	}
	if di.Class == "integer" || di.Class == "float" {
		switch di.ElemSize {
		case 1, 2, 4, 8:
		default:
			return fmt.Errorf("dataset %q: %w: %d-byte %s elements", path, ErrFormat, di.ElemSize, di.Class)
		}
	}
	switch di.Layout {
	case "contiguous":
		need := uint64(n) * uint64(di.ElemSize)
		if di.Extent < need || di.Address > uint64(h.size) || need > uint64(h.size)-di.Address {
			return fmt.Errorf("dataset %q: %w: %d bytes of data at offset %d do not fit in a %d-byte file", path, ErrFormat, need, di.Address, h.size)
		}
	case "chunked":
		if di.Extent*uint64(max(di.ElemSize, 1)) > 1<<30 {
			return fmt.Errorf("dataset %q: %w: chunks of %d elements", path, ErrFormat, di.Extent)
		}
	}
	return nil
}

// numeric refuses datasets that are not integers or floats: complex data
// (HDF5 stores it as a compound of two floats, as h5py and Velox write FFTs)
// is named as such and unsupported, not malformed.
func numeric(path string, di dsInfo) error {
	switch {
	case di.Class == "integer" || di.Class == "float":
		return nil
	case di.Class == "compound" && (di.ElemSize == 8 || di.ElemSize == 16):
		return fmt.Errorf("dataset %q: %w: unsupported complex data (%d-byte complex numbers; picoflow analyses real-valued data)", path, ErrUnsupported, di.ElemSize)
	default:
		return fmt.Errorf("dataset %q: %w: %s is not numeric", path, ErrFormat, di.Class)
	}
}

// readFloat64 reads a whole numeric dataset, converted to float64.
func (h *h5file) readFloat64(path string) (v []float64, di dsInfo, err error) {
	di, err = h.info(path)
	if err != nil {
		return nil, di, err
	}
	if err := numeric(path, di); err != nil {
		return nil, di, err
	}
	if err := h.checkSize(path, di); err != nil {
		return nil, di, err
	}
	defer recoverInto(&err, "read "+path)
	v, err = h.datasets[path].Read()
	if err != nil {
		return nil, di, fmt.Errorf("read %q: %w: %w", path, ErrFormat, err)
	}
	if int64(len(v)) != di.Elems() {
		return nil, di, fmt.Errorf("read %q: %w: got %d values for shape %v", path, ErrFormat, len(v), di.Shape)
	}
	return v, di, nil
}

// readUint16 reads a whole uint16 dataset, through its raw chunks where the
// layout allows (see readUint16Chunks) and through the library otherwise.
func (h *h5file) readUint16(path string) ([]uint16, error) {
	di, err := h.info(path)
	if err != nil {
		return nil, err
	}
	if err := h.checkSize(path, di); err != nil {
		return nil, err
	}
	if di.Class == "integer" && di.ElemSize == 2 && di.Layout == "chunked" {
		fh, err := os.Open(h.path)
		if err != nil {
			return nil, fmt.Errorf("read %q: %w", path, err)
		}
		defer fh.Close()
		v, err := readUint16Chunks(fh, h.size, h.datasets[path].Address(), di)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, errNoFastPath) {
			return nil, fmt.Errorf("read %q: %w", path, err)
		}
	}
	f, _, err := h.readFloat64(path)
	if err != nil {
		return nil, err
	}
	out := make([]uint16, len(f))
	for i, x := range f {
		if x < 0 || x > math.MaxUint16 {
			return nil, fmt.Errorf("read %q: %w: value %g is not a uint16", path, ErrFormat, x)
		}
		out[i] = uint16(x)
	}
	return out, nil
}

// readSlice reads a hyperslab of a numeric dataset as float64.
func (h *h5file) readSlice(path string, start, count []uint64) (v []float64, err error) {
	defer recoverInto(&err, "read "+path)
	raw, err := h.datasets[path].ReadSlice(start, count)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w: %w", path, ErrFormat, err)
	}
	v, ok := raw.([]float64)
	if !ok {
		return nil, fmt.Errorf("read %q: %w: slice of type %T", path, ErrFormat, raw)
	}
	return v, nil
}

// readString reads a string dataset (variable or fixed length) and returns
// its first element.
func (h *h5file) readString(path string) (s string, err error) {
	di, err := h.info(path)
	if err != nil {
		return "", err
	}
	if di.Elems() > 1<<20 {
		return "", fmt.Errorf("string dataset %q: %w", path, ErrTooLarge)
	}
	defer recoverInto(&err, "read "+path)
	ds := h.datasets[path]
	switch di.Class {
	case "vlen":
		b, err := ds.ReadVLenBytes()
		if err != nil {
			return "", fmt.Errorf("read %q: %w: %w", path, ErrFormat, err)
		}
		if len(b) == 0 {
			return "", nil
		}
		return strings.TrimRight(string(b[0]), "\x00"), nil
	case "string":
		ss, err := ds.ReadStrings()
		if err != nil {
			return "", fmt.Errorf("read %q: %w: %w", path, ErrFormat, err)
		}
		if len(ss) == 0 {
			return "", nil
		}
		return ss[0], nil
	}
	return "", fmt.Errorf("dataset %q: %w: %s is not a string", path, ErrFormat, di.Class)
}

// attrs returns the attributes of a group or dataset. Unsupported attribute
// types are skipped.
func (h *h5file) attrs(path string) (out map[string]any, err error) {
	defer recoverInto(&err, "read attributes of "+path)
	out = map[string]any{}
	if g, ok := h.groups[path]; ok {
		as, err := g.Attributes()
		if err != nil {
			return nil, fmt.Errorf("attributes of %q: %w: %w", path, ErrFormat, err)
		}
		for _, a := range as {
			if v, err := a.ReadValue(); err == nil {
				out[a.Name] = normAttr(v)
			}
		}
		return out, nil
	}
	ds, ok := h.datasets[path]
	if !ok {
		return nil, fmt.Errorf("object %q: %w", path, ErrNotFound)
	}
	names, err := ds.ListAttributes()
	if err != nil {
		return nil, fmt.Errorf("attributes of %q: %w: %w", path, ErrFormat, err)
	}
	for _, n := range names {
		if v, err := ds.ReadAttribute(n); err == nil {
			out[n] = normAttr(v)
		}
	}
	return out, nil
}

// normAttr flattens one-element slices and byte strings.
func normAttr(v any) any {
	switch x := v.(type) {
	case []string:
		if len(x) == 1 {
			return strings.TrimRight(x[0], "\x00")
		}
	case string:
		return strings.TrimRight(x, "\x00")
	case []byte:
		return strings.TrimRight(string(x), "\x00")
	case []float64:
		if len(x) == 1 {
			return x[0]
		}
	case []int32:
		if len(x) == 1 {
			return float64(x[0])
		}
	case []int64:
		if len(x) == 1 {
			return float64(x[0])
		}
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case float32:
		return float64(x)
	}
	return v
}

// attrString returns attribute name of path as a string, if present.
func attrString(m map[string]any, name string) (string, bool) {
	switch v := m[name].(type) {
	case string:
		return v, true
	case nil:
		return "", false
	default:
		return fmt.Sprint(v), true
	}
}

// attrFloat returns attribute name as a number, if it is one.
func attrFloat(m map[string]any, name string) (float64, bool) {
	switch v := m[name].(type) {
	case float64:
		return v, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		return f, err == nil
	}
	return 0, false
}

// children lists the direct children of a group path ("/a/b/").
func (h *h5file) children(group string) []string {
	var out []string
	for _, p := range h.order {
		if p == group || !strings.HasPrefix(p, group) {
			continue
		}
		rest := strings.TrimSuffix(p[len(group):], "/")
		if rest != "" && !strings.Contains(rest, "/") {
			out = append(out, p)
		}
	}
	return out
}
