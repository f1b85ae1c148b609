package record

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/emd"
)

// Source describes the file a record is made from.
type Source struct {
	Name   string // file name as the instrument wrote it
	Size   int64
	SHA256 string
	// Creator is the operator or owner; used when the file names none.
	Creator   string
	Publisher string
}

// FromEMD builds the record of an open EMD file.
func FromEMD(f *emd.File, src Source) Record {
	r := Record{
		Schema:       Schema,
		ID:           src.SHA256,
		Identifier:   Identifier{Identifier: "sha256:" + src.SHA256, IdentifierType: "SHA-256"},
		Publisher:    cmpOr(src.Publisher, "picoflow"),
		Formats:      []string{"application/x-hdf5", fmt.Sprintf("EMD (%s %s)", f.Format, f.Version)},
		Sizes:        []string{fmt.Sprintf("%d bytes", src.Size)},
		RawMetadata:  map[string]any{},
		ResourceType: ResourceType{ResourceTypeGeneral: "Dataset"},
	}
	for k, v := range f.Meta {
		r.RawMetadata[k] = v
	}
	for _, s := range f.Signals {
		rs := Signal{Title: s.Title, Kind: string(s.Kind), Shape: s.Shape()}
		for _, a := range s.Axes {
			rs.Axes = append(rs.Axes, Axis(a))
		}
		r.Signals = append(r.Signals, rs)
		if s.Metadata != nil {
			r.RawMetadata["signal:"+s.Title+":"+s.Path] = s.Metadata
		}
	}
	r.ResourceType.ResourceType, r.Subjects = describe(f)
	switch f.Format {
	case emd.FormatVelox:
		r.Instrument = veloxInstrument(f)
	case emd.FormatNCEM:
		r.Instrument, r.Creators = ncemInstrument(f)
	}
	r.Instrument.Software = cmpOr(r.Instrument.Software, f.Software)
	if len(r.Creators) == 0 && src.Creator != "" {
		r.Creators = []Creator{{Name: src.Creator, NameType: "Personal"}}
	}
	if len(r.Creators) == 0 {
		r.Creators = []Creator{{Name: cmpOr(r.Instrument.Name, "unknown"), NameType: "Organizational"}}
	}
	year := time.Now().UTC().Year()
	if t := r.Instrument.AcquisitionStart; t != nil {
		r.Dates = append(r.Dates, Date{Date: t.Format(time.RFC3339), DateType: "Created"})
		year = t.Year()
	}
	r.PublicationYear = year
	name := cmpOr(src.Name, filepath.Base(f.Path))
	r.Titles = []Title{{Title: fmt.Sprintf("%s: %s", r.ResourceType.ResourceType, name)}}
	r.Descriptions = []Description{{DescriptionType: "TechnicalInfo", Description: technical(f, r.Instrument)}}
	r.Files = []File{{Name: name, Role: "raw", MediaType: "application/x-hdf5", Size: src.Size, SHA256: src.SHA256}}
	return r
}

// describe names the resource type and subjects from the file's signals.
func describe(f *emd.File) (string, []Subject) {
	subj := []Subject{{Subject: "electron microscopy"}}
	add := func(s string) {
		for _, x := range subj {
			if x.Subject == s {
				return
			}
		}
		subj = append(subj, Subject{Subject: s})
	}
	typ := ""
	for _, s := range f.Signals {
		switch s.Kind {
		case emd.KindSpectrumImage:
			typ = "EDS spectrum image"
			add("hyperspectral")
			add("energy-dispersive X-ray spectroscopy")
			add("STEM")
		case emd.KindSpectrum:
			typ = cmpOr(typ, "EDS spectrum")
			add("energy-dispersive X-ray spectroscopy")
		case emd.KindImageStack:
			typ = cmpOr(typ, "image series (movie)")
			add("spatiotemporal")
			add("in situ")
		case emd.KindImage:
			typ = cmpOr(typ, "image")
		default:
			typ = cmpOr(typ, "array")
		}
		if s.Title != "" && s.Kind == emd.KindImage {
			add(s.Title)
		}
	}
	if typ == "image" && f.Format == emd.FormatVelox {
		if m := f.Signals[0].Metadata; m != nil && emd.LookupFloat(m, "Scan.DwellTime") > 0 {
			typ = "STEM image"
			add("STEM")
		}
	}
	return typ, subj
}

func q(v float64, unit string) *Quantity {
	if v == 0 || math.IsNaN(v) {
		return nil
	}
	return &Quantity{Value: v, Unit: unit}
}

// round keeps 9 significant digits so unit conversions print cleanly.
func round(v float64) float64 {
	if v == 0 {
		return 0
	}
	p := math.Pow(10, 9-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

func veloxInstrument(f *emd.File) Instrument {
	md := f.Signals[0].Metadata
	for _, s := range f.Signals {
		if s.Kind == emd.KindSpectrumImage || s.Kind == emd.KindImageStack {
			md = s.Metadata
		}
	}
	s := emd.LookupString
	n := emd.LookupFloat
	in := Instrument{
		Manufacturer:    s(md, "Instrument.Manufacturer"),
		Model:           strings.TrimSpace(s(md, "Instrument.InstrumentClass") + " " + s(md, "Instrument.InstrumentModel")),
		SerialNumber:    s(md, "Instrument.InstrumentId"),
		ControlSoftware: s(md, "Instrument.ControlSoftwareVersion"),
		Name:            s(md, "Instrument.ComputerName"),
	}
	if in.Name == "" {
		in.Name = in.Model
	}
	if sec := n(md, "Acquisition.AcquisitionStartDatetime.DateTime"); sec > 0 {
		t := time.Unix(int64(sec), 0).UTC()
		in.AcquisitionStart = &t
	}
	in.AcceleratingVoltage = q(round(n(md, "Optics.AccelerationVoltage")/1000), "kV")
	if m := n(md, "CustomProperties.StemMagnification.value"); m > 0 {
		in.Magnification = q(m, "x")
	} else {
		in.Magnification = q(n(md, "Optics.NominalMagnification"), "x")
	}
	in.CameraLength = q(round(n(md, "Optics.CameraLength")*1000), "mm")
	if s(md, "BinaryResult.PixelUnitX") == "m" {
		in.PixelSizeX = q(round(n(md, "BinaryResult.PixelSize.width")*1e9), "nm")
		in.PixelSizeY = q(round(n(md, "BinaryResult.PixelSize.height")*1e9), "nm")
	}
	in.DwellTime = q(round(n(md, "Scan.DwellTime")*1e6), "µs")
	in.FrameTime = q(round(n(md, "Scan.FrameTime")), "s")
	in.ConvergenceAngle = q(round(n(md, "Optics.BeamConvergence")*1000), "mrad")
	in.ScreenCurrent = q(round(n(md, "Optics.ScreenCurrent")*1e12), "pA")
	in.SpotIndex = q(n(md, "Optics.SpotIndex"), "")
	st := &Stage{
		X:         q(round(n(md, "Stage.Position.x")*1e6), "µm"),
		Y:         q(round(n(md, "Stage.Position.y")*1e6), "µm"),
		Z:         q(round(n(md, "Stage.Position.z")*1e6), "µm"),
		AlphaTilt: q(round(n(md, "Stage.AlphaTilt")*180/math.Pi), "deg"),
		BetaTilt:  q(round(n(md, "Stage.BetaTilt")*180/math.Pi), "deg"),
		Holder:    s(md, "Stage.HolderType"),
	}
	if *st != (Stage{}) {
		in.Stage = st
	}
	dets, _ := emd.Lookup(md, "Detectors").(map[string]any)
	keys := make([]string, 0, len(dets))
	for k := range dets {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return len(keys[i]) < len(keys[j]) || len(keys[i]) == len(keys[j]) && keys[i] < keys[j]
	})
	for _, k := range keys {
		d, _ := dets[k].(map[string]any)
		if d == nil || s(d, "Inserted") == "false" {
			continue
		}
		det := Detector{Name: s(d, "DetectorName"), Type: s(d, "DetectorType")}
		det.Dispersion = q(n(d, "Dispersion"), "eV/channel")
		if det.Dispersion != nil {
			det.Offset = &Quantity{Value: n(d, "OffsetEnergy"), Unit: "eV"}
		}
		det.Elevation = q(round(n(d, "ElevationAngle")*180/math.Pi), "deg")
		// Velox writes a document per signal, some during the acquisition
		// (the stream's, with the times so far): a detector's live and
		// real time are the largest any document records, the summed
		// spectra's at the end.
		var live, real float64
		for _, sg := range f.Signals {
			all, _ := emd.Lookup(sg.Metadata, "Detectors").(map[string]any)
			for _, v := range all {
				if od, _ := v.(map[string]any); od != nil && s(od, "DetectorName") == det.Name {
					live, real = math.Max(live, n(od, "LiveTime")), math.Max(real, n(od, "RealTime"))
				}
			}
		}
		det.LiveTime = q(round(live), "s")
		det.RealTime = q(round(real), "s")
		in.Detectors = append(in.Detectors, det)
	}
	return in
}

func ncemInstrument(f *emd.File) (Instrument, []Creator) {
	var in Instrument
	var creators []Creator
	if m, ok := f.Meta["microscope"].(map[string]any); ok {
		in.Name = emd.LookupString(m, "name")
		in.AcceleratingVoltage = q(round(emd.LookupFloat(m, "high tension")/1000), "kV")
		in.Magnification = q(emd.LookupFloat(m, "magnification"), "x")
		in.CameraLength = q(round(emd.LookupFloat(m, "camera length")*1000), "mm")
		in.DwellTime = q(round(emd.LookupFloat(m, "dwell time")*1e6), "µs")
	}
	if m, ok := f.Meta["user"].(map[string]any); ok {
		// Berkeley's acquisition software writes "User name"; others "name".
		for _, k := range []string{"name", "User name", "user name", "username"} {
			if n := strings.TrimSpace(emd.LookupString(m, k)); n != "" {
				creators = append(creators, Creator{Name: n, NameType: "Personal"})
				break
			}
		}
	}
	// The acquisition time: the data group's "acquisition times" (Unix
	// seconds), which ncempy reads as the file's time.
	for _, s := range f.Signals {
		if sec := emd.LookupFloat(s.Metadata, "acquisition times"); sec > 0 {
			t := time.Unix(int64(sec), 0).UTC()
			in.AcquisitionStart = &t
			break
		}
	}
	if len(f.Signals) > 0 && len(f.Signals[0].Axes) >= 2 {
		ax := f.Signals[0].Axes
		if u := ax[len(ax)-1].Units; u == "nm" {
			in.PixelSizeX = q(round(ax[len(ax)-1].Scale), u)
			in.PixelSizeY = q(round(ax[len(ax)-2].Scale), u)
		}
	}
	return in, creators
}

func technical(f *emd.File, in Instrument) string {
	var parts []string
	for _, s := range f.Signals {
		dims := make([]string, len(s.Axes))
		for i, a := range s.Axes {
			dims[i] = fmt.Sprint(a.Size)
		}
		parts = append(parts, fmt.Sprintf("%s %s %s", s.Title, strings.ReplaceAll(string(s.Kind), "_", " "), strings.Join(dims, "×")))
	}
	d := strings.Join(parts, "; ")
	if in.AcceleratingVoltage != nil {
		d += fmt.Sprintf("; %g kV", in.AcceleratingVoltage.Value)
	}
	if in.Magnification != nil {
		d += fmt.Sprintf("; magnification %gx", in.Magnification.Value)
	}
	return d
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
