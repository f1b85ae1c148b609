package emd

import (
	"fmt"
	"maps"
	"strings"
)

// isNCEM reports whether the root group carries the Berkeley EMD version
// attributes.
func isNCEM(h *h5file) bool {
	a, err := h.attrs("/")
	if err != nil {
		return false
	}
	_, ok := a["version_major"]
	return ok
}

// loadNCEM reads a Berkeley/NCEM EMD v0.2 file: every group whose attribute
// emd_group_type is 1 holds a dataset "data" and coordinate vectors
// dim1..dimN (dimK describes axis K-1 of data).
//
// Arrays are kept in their stored C order, as ncempy reads them. (RosettaSciIO
// and HyperSpy transpose NCEM arrays; compare against them with that in mind.)
func (f *File) loadNCEM() error {
	root, _ := f.h.attrs("/")
	maj, _ := attrString(root, "version_major")
	minor, _ := attrString(root, "version_minor")
	f.Version = maj + "." + minor
	for _, p := range f.h.order {
		if !strings.HasSuffix(p, "/") || strings.Count(p, "/") != 2 {
			continue
		}
		name := strings.Trim(p, "/")
		switch name {
		case "microscope", "sample", "user", "comments", "stage":
			if a, err := f.h.attrs(p); err == nil && len(a) > 0 {
				f.Meta[name] = a
			}
		}
	}
	for _, p := range f.h.order {
		if !strings.HasSuffix(p, "/") {
			continue
		}
		a, err := f.h.attrs(p)
		if err != nil {
			continue
		}
		if t, ok := attrFloat(a, "emd_group_type"); !ok || t != 1 {
			continue
		}
		sig, err := f.ncemSignal(p, a)
		if err != nil {
			return err
		}
		f.Signals = append(f.Signals, sig)
	}
	if len(f.Signals) == 0 {
		return fmt.Errorf("%w: NCEM file without emd_group_type=1 data groups", ErrUnsupported)
	}
	return nil
}

func (f *File) ncemSignal(group string, attrs map[string]any) (Signal, error) {
	path := group + "data"
	di, err := f.h.info(path)
	if err != nil {
		return Signal{}, fmt.Errorf("data group %s: %w", group, err)
	}
	if len(di.Shape) == 0 {
		return Signal{}, fmt.Errorf("data group %s: %w: scalar data", group, ErrFormat)
	}
	// Berkeley's acquisition software stores when the data was taken (Unix
	// seconds) beside it.
	if _, ok := f.h.datasets[group+"acquisition times"]; ok {
		if v, _, err := f.h.readFloat64(group + "acquisition times"); err == nil && len(v) > 0 && v[0] > 0 {
			attrs = maps.Clone(attrs)
			if attrs == nil {
				attrs = map[string]any{}
			}
			attrs["acquisition times"] = v[0]
		}
	}
	sig := Signal{
		Title:    strings.TrimSuffix(group[strings.LastIndex(strings.TrimSuffix(group, "/"), "/")+1:], "/"),
		Path:     path,
		DType:    dtypeName(di),
		Metadata: attrs,
	}
	for k, n := range di.Shape {
		ax := Axis{Size: n, Scale: 1}
		dim := fmt.Sprintf("%sdim%d", group, k+1)
		if _, ok := f.h.datasets[dim]; ok {
			if v, ddi, err := f.h.readFloat64(dim); err == nil && ddi.Elems() <= 1<<24 && len(v) >= 2 {
				ax.Offset = v[0]
				ax.Scale = (v[len(v)-1] - v[0]) / float64(len(v)-1)
			}
			if da, err := f.h.attrs(dim); err == nil {
				ax.Name, _ = attrString(da, "name")
				u, _ := attrString(da, "units")
				ax.Units = cleanUnits(u)
			}
		}
		sig.Axes = append(sig.Axes, ax)
	}
	switch len(di.Shape) {
	case 2:
		sig.Kind = KindImage
	case 3:
		if t := strings.ToLower(sig.Axes[0].Name); strings.Contains(t, "time") || strings.Contains(t, "frame") {
			sig.Kind = KindImageStack
		} else {
			sig.Kind = KindArray
		}
	default:
		sig.Kind = KindArray
	}
	return sig, nil
}

// cleanUnits turns NCEM unit strings such as "[n_m]" into "nm".
func cleanUnits(u string) string {
	u = strings.Trim(strings.TrimSpace(u), "[]")
	return strings.ReplaceAll(u, "_", "")
}
