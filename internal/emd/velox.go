package emd

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// loadVelox reads the structure and metadata of a ThermoFisher Velox file.
func (f *File) loadVelox() error {
	ver, err := f.jsonDoc("/Version")
	if err != nil {
		return err
	}
	f.Meta["Version"] = ver
	f.Version, _ = ver["version"].(string)
	if info, err := f.jsonDoc("/Info"); err == nil {
		f.Meta["Info"] = info
		if v, _ := info["applicationVersion"].(string); v != "" {
			f.Software = "Velox " + v
		}
	}
	titles := f.veloxTitles()

	images := f.h.children("/Data/Image/")
	streams := f.h.children("/Data/SpectrumStream/")
	spectra := f.h.children("/Data/Spectrum/")
	// A spectrum image needs both an image (for the spatial size) and a
	// non-empty event stream; rsciio's rule.
	var streamData []string
	for _, s := range streams {
		p := s + "Data"
		if di, err := f.h.info(p); err == nil && di.Elems() > 0 {
			streamData = append(streamData, p)
		}
	}
	isSI := len(images) > 0 && len(streamData) > 0

	for _, g := range images {
		sig, err := f.veloxImage(g, titles, isSI)
		if err != nil {
			return err
		}
		f.Signals = append(f.Signals, sig)
	}
	if isSI {
		sig, err := f.veloxSpectrumImage(streams, streamData, f.Signals[0])
		if err != nil {
			return err
		}
		f.Signals = append(f.Signals, sig)
	} else {
		for _, g := range spectra {
			sig, err := f.veloxSpectrum(g)
			if err != nil {
				return err
			}
			f.Signals = append(f.Signals, sig)
		}
	}
	if len(f.Signals) == 0 {
		return fmt.Errorf("%w: Velox file without images, spectra or spectrum images", ErrUnsupported)
	}
	return nil
}

// jsonDoc reads a string dataset holding one JSON object.
func (f *File) jsonDoc(path string) (map[string]any, error) {
	s, err := f.h.readString(path)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("parse %s: %w: %w", path, ErrFormat, err)
	}
	return m, nil
}

// frameMetadata parses the JSON of frame 0 from a Velox (60000, F) uint8
// Metadata dataset.
func (f *File) frameMetadata(path string) (map[string]any, error) {
	di, err := f.h.info(path)
	if err != nil {
		return nil, err
	}
	if len(di.Shape) != 2 || di.Shape[0] == 0 || di.Shape[1] == 0 || di.Shape[0] > 1<<24 {
		return nil, fmt.Errorf("metadata %s: %w: shape %v", path, ErrFormat, di.Shape)
	}
	if err := f.h.checkSize(path, di); err != nil {
		return nil, err
	}
	v, err := f.h.readSlice(path, []uint64{0, 0}, []uint64{uint64(di.Shape[0]), 1})
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, len(v))
	for _, x := range v {
		if x == 0 {
			break
		}
		b = append(b, byte(x))
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parse metadata %s: %w: %w", path, ErrFormat, err)
	}
	return m, nil
}

// veloxTitles maps data group paths ("/Data/Image/<uuid>") to display names,
// from the input operations (Velox < 11) and displays (Velox >= 11).
func (f *File) veloxTitles() map[string]string {
	out := map[string]string{}
	for _, op := range []struct{ group, key string }{
		{"/Operations/StemInputOperation/", "detector"},
		{"/Operations/CameraInputOperation/", "cameraName"},
	} {
		for _, p := range f.h.children(op.group) {
			m, err := f.jsonDoc(p)
			if err != nil {
				continue
			}
			dp, _ := m["dataPath"].(string)
			name, _ := m[op.key].(string)
			if dp != "" && name != "" {
				out[dp] = name
			}
		}
	}
	for _, p := range f.h.children("/Displays/ImageDisplay/") {
		m, err := f.jsonDoc(p)
		if err != nil {
			continue
		}
		ref, _ := m["data"].(string)
		title, _ := m["title"].(string)
		if ref == "" || title == "" {
			continue
		}
		if r, err := f.jsonDoc(ref); err == nil {
			if dp, _ := r["dataPath"].(string); dp != "" {
				out[dp] = title
			}
		}
	}
	return out
}

func (f *File) veloxImage(group string, titles map[string]string, withSI bool) (Signal, error) {
	path := group + "Data"
	di, err := f.h.info(path)
	if err != nil {
		return Signal{}, err
	}
	if len(di.Shape) != 3 || di.Shape[0] == 0 || di.Shape[1] == 0 || di.Shape[2] == 0 {
		return Signal{}, fmt.Errorf("image %s: %w: want (H, W, frames), got shape %v", path, ErrFormat, di.Shape)
	}
	md, err := f.frameMetadata(group + "Metadata")
	if err != nil {
		return Signal{}, err
	}
	title := titles[strings.TrimSuffix(group, "/")]
	if title == "" {
		title = jstr(md, "BinaryResult.Detector")
	}
	h, w, nf := di.Shape[0], di.Shape[1], di.Shape[2]
	ay, ax := spatialAxes(md, h, w)
	sig := Signal{Title: title, Path: path, DType: dtypeName(di), Metadata: md}
	if nf > 1 && !withSI {
		dt := jfloat(md, "Scan.FrameTime")
		if dt == 0 {
			idx := jstr(md, "BinaryResult.DetectorIndex")
			dt = jfloat(md, "Detectors.Detector-"+idx+".ExposureTime")
		}
		if dt == 0 {
			dt = 1
		}
		sig.Kind = KindImageStack
		sig.Axes = []Axis{{Name: "Time", Size: nf, Scale: dt, Units: "s"}, ay, ax}
	} else {
		sig.Kind = KindImage
		sig.Axes = []Axis{ay, ax}
	}
	return sig, nil
}

// spatialAxes builds the Y and X axes from BinaryResult pixel calibration,
// expressed in a readable unit (nm, µm or pm), as HyperSpy does.
func spatialAxes(md map[string]any, h, w int) (Axis, Axis) {
	sx := jfloat(md, "BinaryResult.PixelSize.width")
	sy := jfloat(md, "BinaryResult.PixelSize.height")
	ox := jfloat(md, "BinaryResult.Offset.x")
	oy := jfloat(md, "BinaryResult.Offset.y")
	ux := jstr(md, "BinaryResult.PixelUnitX")
	if sx == 0 || ux == "" {
		return Axis{Name: "y", Size: h, Scale: 1, Units: "px"}, Axis{Name: "x", Size: w, Scale: 1, Units: "px"}
	}
	factor, unit := 1.0, ux
	if ux == "m" {
		factor, unit = niceLength(sx * float64(w))
	} else if ux == "1/m" {
		factor, unit = 1e-9, "1/nm"
	}
	return Axis{Name: "y", Size: h, Scale: sy * factor, Offset: oy * factor, Units: unit},
		Axis{Name: "x", Size: w, Scale: sx * factor, Offset: ox * factor, Units: unit}
}

// niceLength picks a unit for a field of view of fov metres.
func niceLength(fov float64) (float64, string) {
	switch a := math.Abs(fov); {
	case a >= 1e-3:
		return 1e3, "mm"
	case a >= 1e-6:
		return 1e6, "µm"
	case a >= 1e-9:
		return 1e9, "nm"
	default:
		return 1e12, "pm"
	}
}

func (f *File) veloxSpectrum(group string) (Signal, error) {
	path := group + "Data"
	di, err := f.h.info(path)
	if err != nil {
		return Signal{}, err
	}
	if len(di.Shape) == 0 || di.Shape[0] == 0 {
		return Signal{}, fmt.Errorf("spectrum %s: %w: shape %v", path, ErrFormat, di.Shape)
	}
	md, err := f.frameMetadata(group + "Metadata")
	if err != nil {
		return Signal{}, err
	}
	e := energyAxis(md, di.Shape[0])
	e.Name = "Energy"
	return Signal{Title: "EDS", Kind: KindSpectrum, Path: path, DType: dtypeName(di), Metadata: md, Axes: []Axis{e}}, nil
}

func (f *File) veloxSpectrumImage(streamGroups, streamData []string, image Signal) (Signal, error) {
	first := strings.TrimSuffix(streamData[0], "Data")
	md, err := f.frameMetadata(first + "Metadata")
	if err != nil {
		return Signal{}, err
	}
	settings, err := f.jsonDoc(first + "AcquisitionSettings")
	if err != nil {
		return Signal{}, err
	}
	chans, err := strconv.Atoi(fmt.Sprint(settings["bincount"]))
	if err != nil || chans <= 0 || chans > 65535 {
		return Signal{}, fmt.Errorf("spectrum stream %s: %w: bincount %v", first, ErrFormat, settings["bincount"])
	}
	if enc := fmt.Sprint(settings["StreamEncoding"]); enc != "uint16" && enc != "<nil>" {
		return Signal{}, fmt.Errorf("spectrum stream %s: %w: stream encoding %q", first, ErrUnsupported, enc)
	}
	frames := 0
	for _, g := range f.h.children("/Data/SpectrumImage/") {
		if s, err := f.jsonDoc(g + "SpectrumImageSettings"); err == nil {
			frames, _ = strconv.Atoi(fmt.Sprint(s["endFramePosition"]))
			break
		}
	}
	e := energyAxis(md, chans)
	e.Name = "X-ray energy"
	// Each stream is one detector (SuperX: four), named in its metadata.
	var names []string
	for _, p := range streamData {
		name := ""
		if m, err := f.frameMetadata(strings.TrimSuffix(p, "Data") + "Metadata"); err == nil {
			name = jstr(m, "BinaryResult.Detector")
		}
		names = append(names, name)
	}
	ay, ax := image.Axes[len(image.Axes)-2], image.Axes[len(image.Axes)-1]
	// The stream's own calibration where it has one: Velox 11 gives the
	// spectrum image its scan offset, which the HAADF image beside it
	// (offset 0) does not carry.
	if sy, sx := spatialAxes(md, ay.Size, ax.Size); sx.Units != "px" {
		ay, ax = sy, sx
	}
	return Signal{
		Title: "EDS", Kind: KindSpectrumImage, Path: streamData[0], DType: "uint16",
		Metadata: md, Axes: []Axis{ay, ax, e},
		streams: streamData, frames: frames, chans: chans, DetectorNames: names,
	}, nil
}

// energyAxis calibrates channels from the detector whose name contains
// BinaryResult.Detector ("SuperXG2" matches "SuperXG21").
func energyAxis(md map[string]any, chans int) Axis {
	a := Axis{Size: chans, Scale: 1, Units: "channel"}
	det := jstr(md, "BinaryResult.Detector")
	dets, _ := md["Detectors"].(map[string]any)
	keys := make([]string, 0, len(dets))
	for k := range dets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		d, _ := dets[k].(map[string]any)
		name, _ := d["DetectorName"].(string)
		if det == "" || !strings.Contains(name, det) {
			continue
		}
		disp := jfloat(d, "Dispersion")
		if disp == 0 {
			continue
		}
		a.Scale = disp / 1000
		a.Offset = jfloat(d, "OffsetEnergy") / 1000
		a.Units = "keV"
		break
	}
	return a
}

// jget walks a dotted path through nested JSON objects. Keys may themselves
// contain dots (CustomProperties "Detectors[X].Y"), so the longest matching
// key is tried first.
func jget(m map[string]any, path string) any {
	if v, ok := m[path]; ok {
		return v
	}
	parts := strings.Split(path, ".")
	for i := len(parts) - 1; i >= 1; i-- {
		key := strings.Join(parts[:i], ".")
		if sub, ok := m[key].(map[string]any); ok {
			return jget(sub, strings.Join(parts[i:], "."))
		}
	}
	return nil
}

// jstr returns the string at path, or "".
func jstr(m map[string]any, path string) string {
	switch v := jget(m, path).(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	return ""
}

// jfloat returns the number at path (Velox stores numbers as strings), or 0.
func jfloat(m map[string]any, path string) float64 {
	v, err := parseQuantity(jstr(m, path))
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// siPrefix scales a unit prefix: "300kV" is 300e3 (in the unit itself).
var siPrefix = map[string]float64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12}

// parseQuantity reads a number, or a number with a unit ("300kV", "1.5 us",
// "200 kV"), in the unit's base (volts, seconds, metres...): some Velox
// versions write values that way.
func parseQuantity(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if v, err := strconv.ParseFloat(s, 64); err == nil {
		return v, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune("0123456789+-.eE", r) })
	if i <= 0 {
		return 0, fmt.Errorf("not a quantity: %q", s)
	}
	v, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, err
	}
	unit := strings.TrimSpace(s[i:])
	for _, base := range []string{"V", "s", "m", "A", "Hz", "eV", "x"} {
		if p, ok := strings.CutSuffix(unit, base); ok {
			if f, ok := siPrefix[p]; ok {
				return v * f, nil
			}
		}
	}
	return 0, fmt.Errorf("unknown unit in %q", s)
}

func dtypeName(di dsInfo) string {
	switch di.Class {
	case "integer":
		return fmt.Sprintf("integer%d", di.ElemSize*8)
	case "float":
		return fmt.Sprintf("float%d", di.ElemSize*8)
	}
	return di.Class
}

// Lookup returns the value at a dotted path of a metadata document (Velox
// JSON or NCEM attributes), or nil.
func Lookup(m map[string]any, path string) any { return jget(m, path) }

// LookupString returns the string at a dotted path, or "".
func LookupString(m map[string]any, path string) string { return jstr(m, path) }

// LookupFloat returns the number at a dotted path (numbers are often stored
// as text), or 0.
func LookupFloat(m map[string]any, path string) float64 { return jfloat(m, path) }
