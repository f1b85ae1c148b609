package analysis

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/picoflow/picoflow/internal/analysis/hyperspectral"
	"github.com/picoflow/picoflow/internal/emd"
)

// Parameter names a flow step or a re-analysis campaign may set
// (analysis.Options.Params). Each overrides one analysis setting.
var paramHelp = map[string]string{
	"fwhm_mn_kev":      "detector resolution at Mn Ka (keV, default 0.130)",
	"min_significance": "element detection threshold in standard deviations (default 5)",
	"min_xray_kev":     "events below this energy are the zero (strobe) peak, not X-rays (keV, default 0.2)",
	"beam_kev":         "beam energy for the k-factors (keV, default: the file's accelerating voltage)",
	"detectors":        "detector streams to sum, by index (0,2; default all)",
	"frames":           "scan frames FIRST:LAST (LAST excluded; default all)",
	"quant_exclude":    "elements left out of the composition (C,Cu)",
	"k_factors":        "Cliff-Lorimer k-factors relative to Si K (Fe=1.31,Ni=1.45)",
	"noise_sigmas":     "movies: how far above its local background a particle must rise (local noise standard deviations, default 5.5)",
	"dynamics_sigmas":  "movies: how far a particle must rise above the saddle to a touching brighter one to count apart (noise sigmas, default 2.5)",
	"max_radius_px":    "movies: the largest particle radius; the background follows the film at larger scales (pixels, default 12)",
	"area_level":       "movies: fraction of a particle's height at which its area is measured (default 0.3)",
	"smoothing_px":     "movies: smoothing before detection (pixels, default 1)",
}

// ParamNames lists the parameters an analysis accepts, with what each does.
func ParamNames() []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(paramHelp)) {
		out = append(out, k+": "+paramHelp[k])
	}
	return out
}

// CheckParams reports the first parameter that is unknown or malformed.
func CheckParams(params map[string]string) error {
	var o Options
	return o.applyParams(params)
}

// applyParams sets the options Params names.
func (o *Options) applyParams(params map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(params)) {
		v := strings.TrimSpace(params[k])
		num := func(dst *float64) error {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || x <= 0 {
				return fmt.Errorf("parameter %s=%q: want a positive number", k, v)
			}
			*dst = x
			return nil
		}
		var err error
		switch k {
		case "fwhm_mn_kev":
			err = num(&o.Hyperspectral.Identify.FWHMMn)
		case "min_significance":
			err = num(&o.Hyperspectral.Identify.MinSignificance)
		case "min_xray_kev":
			err = num(&o.Hyperspectral.MinXRayEnergy)
		case "beam_kev":
			err = num(&o.Hyperspectral.Quant.BeamEnergy)
		case "noise_sigmas":
			err = num(&o.Movie.Detector.Significance)
		case "dynamics_sigmas":
			err = num(&o.Movie.Detector.Dynamics)
		case "max_radius_px":
			var r float64
			if err = num(&r); err == nil {
				o.Movie.Detector.MaxRadius = int(r)
			}
		case "area_level":
			err = num(&o.Movie.Detector.AreaLevel)
		case "smoothing_px":
			err = num(&o.Movie.Detector.Sigma)
		case "detectors":
			o.Hyperspectral.Detectors = nil
			for _, f := range strings.Split(v, ",") {
				i, e := strconv.Atoi(strings.TrimSpace(f))
				if e != nil || i < 0 {
					return fmt.Errorf("parameter detectors=%q: want detector indexes, e.g. 0,2", v)
				}
				o.Hyperspectral.Detectors = append(o.Hyperspectral.Detectors, i)
			}
		case "frames":
			o.Hyperspectral.Frames, err = ParseFrames(v)
		case "quant_exclude":
			o.Hyperspectral.Quant.Exclude = splitList(v)
		case "k_factors":
			o.Hyperspectral.Quant.KFactors = map[string]float64{}
			for _, kv := range splitList(v) {
				el, s, ok := strings.Cut(kv, "=")
				x, e := strconv.ParseFloat(s, 64)
				if !ok || e != nil || x <= 0 {
					return fmt.Errorf("parameter k_factors=%q: want ELEMENT=VALUE pairs, e.g. Fe=1.31,Ni=1.45", v)
				}
				o.Hyperspectral.Quant.KFactors[strings.TrimSpace(el)] = x
			}
		default:
			return fmt.Errorf("unknown analysis parameter %q (known: %s)", k, strings.Join(slices.Sorted(maps.Keys(paramHelp)), ", "))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// ParseFrames reads FIRST:LAST (either may be left out) or a single frame.
func ParseFrames(v string) (emd.FrameRange, error) {
	if v == "" {
		return emd.FrameRange{}, nil
	}
	a, b, colon := strings.Cut(v, ":")
	num := func(s string) (int, error) {
		if s == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("frames %q: want FIRST:LAST with frame numbers from 0", v)
		}
		return n, nil
	}
	first, err := num(a)
	if err != nil {
		return emd.FrameRange{}, err
	}
	if !colon {
		return emd.FrameRange{First: first, Last: first + 1}, nil
	}
	last, err := num(b)
	if err != nil {
		return emd.FrameRange{}, err
	}
	if last != 0 && last <= first {
		return emd.FrameRange{}, fmt.Errorf("frames %q: LAST must be after FIRST", v)
	}
	return emd.FrameRange{First: first, Last: last}, nil
}

// effectiveParams are the settings an analysis of this kind used, defaults
// resolved, for the record's provenance.
func (o *Options) effectiveParams(kind string, beamKeV float64) map[string]any {
	p := map[string]any{}
	switch kind {
	case "hyperspectral", "spectrum":
		h := o.Hyperspectral
		p["fwhm_mn_kev"] = orDefault(h.Identify.FWHMMn, 0.130)
		p["min_significance"] = orDefault(h.Identify.MinSignificance, 5)
		p["min_xray_kev"] = orDefault(h.MinXRayEnergy, hyperspectral.DefaultMinXRayEnergy)
		if beamKeV > 0 {
			p["beam_kev"] = beamKeV
		}
		p["detectors"] = "all"
		if len(h.Detectors) > 0 {
			p["detectors"] = strings.Trim(strings.Join(strings.Fields(fmt.Sprint(h.Detectors)), ","), "[]")
		}
		p["frames"] = "all"
		if h.Frames != (emd.FrameRange{}) {
			last := ""
			if h.Frames.Last > 0 {
				last = strconv.Itoa(h.Frames.Last)
			}
			p["frames"] = fmt.Sprintf("%d:%s", h.Frames.First, last)
		}
		if len(h.Quant.Exclude) > 0 {
			p["quant_exclude"] = strings.Join(h.Quant.Exclude, ",")
		}
		if len(h.Quant.KFactors) > 0 {
			var kv []string
			for _, el := range slices.Sorted(maps.Keys(h.Quant.KFactors)) {
				kv = append(kv, fmt.Sprintf("%s=%g", el, h.Quant.KFactors[el]))
			}
			p["k_factors"] = strings.Join(kv, ",")
		}
	case "spatiotemporal":
		if o.Model != "" {
			p["detector"] = "yolo"
		} else {
			d := o.Movie.Detector
			p["detector"] = "classical"
			p["noise_sigmas"] = orDefault(d.Significance, 5.5)
			p["dynamics_sigmas"] = orDefault(d.Dynamics, 2.5)
			p["max_radius_px"] = orDefault(float64(d.MaxRadius), 12)
			p["area_level"] = orDefault(d.AreaLevel, 0.3)
			p["smoothing_px"] = orDefault(d.Sigma, 1)
		}
	}
	return p
}

func orDefault(v, def float64) float64 {
	if v > 0 {
		return v
	}
	return def
}
