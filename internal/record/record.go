// Package record defines the catalogue record of one instrument file: a
// DataCite-based description (titles, creators, dates, resource type,
// subjects) plus an instrument section whose quantities carry units, the
// analysis summary, and the full raw metadata.
package record

import (
	"strings"
	"time"
)

// Schema identifies the record layout.
const Schema = "picoflow/record/v1 (DataCite 4.5 based)"

// Record is the catalogue entry of one file.
type Record struct {
	Schema string `json:"schema"`
	// ID is the SHA-256 of the file's content, hex encoded.
	ID              string        `json:"id"`
	Identifier      Identifier    `json:"identifier"`
	Titles          []Title       `json:"titles"`
	Creators        []Creator     `json:"creators"`
	Publisher       string        `json:"publisher"`
	PublicationYear int           `json:"publicationYear"`
	Dates           []Date        `json:"dates"`
	ResourceType    ResourceType  `json:"types"`
	Subjects        []Subject     `json:"subjects"`
	Formats         []string      `json:"formats"`
	Sizes           []string      `json:"sizes"`
	Descriptions    []Description `json:"descriptions,omitempty"`
	// RightsList is the data's licence (DataCite rightsList).
	RightsList []Rights `json:"rightsList,omitempty"`
	// RelatedIdentifiers link the record to others: the raw data it was
	// derived from (relationType IsDerivedFrom, the record's id).
	RelatedIdentifiers []RelatedIdentifier `json:"relatedIdentifiers,omitempty"`
	// Edits are the changes people made to the record's description, with
	// who and when (each edit is also a version of the record).
	Edits      []Edit     `json:"edits,omitempty"`
	Instrument Instrument `json:"instrument"`
	Signals    []Signal   `json:"signals"`
	Analysis   *Analysis  `json:"analysis,omitempty"`
	Files      []File     `json:"files"`
	// Provenance says what made the record, so it can be re-derived.
	Provenance *Provenance `json:"provenance,omitempty"`
	// RawMetadata is every metadata document of the file, unchanged.
	RawMetadata map[string]any `json:"rawMetadata"`
}

// Identifier is the DataCite identifier block.
type Identifier struct {
	Identifier     string `json:"identifier"`
	IdentifierType string `json:"identifierType"`
}

// Title is a DataCite title.
type Title struct {
	Title     string `json:"title"`
	TitleType string `json:"titleType,omitempty"`
}

// Creator is a DataCite creator.
type Creator struct {
	Name     string `json:"name"`
	NameType string `json:"nameType,omitempty"`
}

// Date is a DataCite date; DateType is "Created" for the acquisition.
type Date struct {
	Date     string `json:"date"`
	DateType string `json:"dateType"`
}

// ResourceType is DataCite's types block.
type ResourceType struct {
	ResourceTypeGeneral string `json:"resourceTypeGeneral"`
	ResourceType        string `json:"resourceType"`
}

// Subject is a DataCite subject keyword.
type Subject struct {
	Subject       string `json:"subject"`
	SubjectScheme string `json:"subjectScheme,omitempty"`
}

// Description is a DataCite description.
type Description struct {
	Description     string `json:"description"`
	DescriptionType string `json:"descriptionType"`
}

// Quantity is a value with its unit.
type Quantity struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Instrument is what the microscope recorded about the acquisition.
type Instrument struct {
	Name             string     `json:"name,omitempty"`
	Manufacturer     string     `json:"manufacturer,omitempty"`
	Model            string     `json:"model,omitempty"`
	SerialNumber     string     `json:"serialNumber,omitempty"`
	Software         string     `json:"software,omitempty"`
	ControlSoftware  string     `json:"controlSoftware,omitempty"`
	AcquisitionStart *time.Time `json:"acquisitionStart,omitempty"`
	// AcceleratingVoltage in kV.
	AcceleratingVoltage *Quantity `json:"acceleratingVoltage,omitempty"`
	Magnification       *Quantity `json:"magnification,omitempty"`
	CameraLength        *Quantity `json:"cameraLength,omitempty"`
	PixelSizeX          *Quantity `json:"pixelSizeX,omitempty"`
	PixelSizeY          *Quantity `json:"pixelSizeY,omitempty"`
	DwellTime           *Quantity `json:"dwellTime,omitempty"`
	FrameTime           *Quantity `json:"frameTime,omitempty"`
	// ConvergenceAngle is the probe's semi-angle (mrad); ScreenCurrent the
	// beam current the fluorescent screen measured (pA), the probe current
	// as Velox records it; SpotIndex the spot size setting.
	ConvergenceAngle *Quantity  `json:"convergenceAngle,omitempty"`
	ScreenCurrent    *Quantity  `json:"screenCurrent,omitempty"`
	SpotIndex        *Quantity  `json:"spotIndex,omitempty"`
	Stage            *Stage     `json:"stage,omitempty"`
	Detectors        []Detector `json:"detectors,omitempty"`
}

// Stage is the specimen stage position.
type Stage struct {
	X         *Quantity `json:"x,omitempty"`
	Y         *Quantity `json:"y,omitempty"`
	Z         *Quantity `json:"z,omitempty"`
	AlphaTilt *Quantity `json:"alphaTilt,omitempty"`
	BetaTilt  *Quantity `json:"betaTilt,omitempty"`
	Holder    string    `json:"holder,omitempty"`
}

// Detector is one detector that was inserted during the acquisition.
type Detector struct {
	Name       string    `json:"name"`
	Type       string    `json:"type,omitempty"`
	Dispersion *Quantity `json:"dispersion,omitempty"`
	Offset     *Quantity `json:"energyOffset,omitempty"`
	Elevation  *Quantity `json:"elevationAngle,omitempty"`
	LiveTime   *Quantity `json:"liveTime,omitempty"`
	RealTime   *Quantity `json:"realTime,omitempty"`
}

// Signal summarises one dataset of the file.
type Signal struct {
	Title string `json:"title"`
	Kind  string `json:"kind"`
	Shape []int  `json:"shape"`
	Axes  []Axis `json:"axes"`
}

// Axis is a calibrated axis.
type Axis struct {
	Name   string  `json:"name"`
	Size   int     `json:"size"`
	Scale  float64 `json:"scale"`
	Offset float64 `json:"offset"`
	Units  string  `json:"units"`
}

// Analysis summarises what the analysis found.
type Analysis struct {
	Kind     string   `json:"kind"`
	Elements []string `json:"elements,omitempty"`
	// TotalCounts is the X-rays of a spectrum (image); Events every
	// recorded event, the detector's zero (strobe) peak included.
	TotalCounts uint64 `json:"totalCounts,omitempty"`
	Events      uint64 `json:"events,omitempty"`
	Frames      int    `json:"frames,omitempty"`
	// Selection says which part of the data went in: detector streams and
	// frames of a spectrum image ("detectors 0-3 of 4, frames 2-4 of 10").
	Selection string `json:"selection,omitempty"`
	// Preview names the image shown as the record's preview ("HAADF").
	Preview string `json:"preview,omitempty"`
	// Composition is the quantification of the whole spectrum (image).
	Composition *Composition       `json:"composition,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	// Detector names the particle detector of a movie analysis.
	Detector   string   `json:"detector,omitempty"`
	Warnings   []string `json:"warnings,omitempty"`
	DurationMS float64  `json:"durationMs"`
}

// Composition is a quantification: method, beam energy and one row per
// element.
type Composition struct {
	Method     string           `json:"method"`
	BeamEnergy float64          `json:"beamEnergyKeV"`
	Elements   []ElementPercent `json:"elements"`
	Excluded   []string         `json:"excluded,omitempty"`
}

// ElementPercent is one element's share of a composition.
type ElementPercent struct {
	Element       string  `json:"element"`
	Line          string  `json:"line"`
	KFactor       float64 `json:"kFactor"`
	WeightPercent float64 `json:"weightPercent"`
	AtomicPercent float64 `json:"atomicPercent"`
}

// File is one file belonging to the record: the raw data or a product.
type File struct {
	Name      string `json:"name"`
	Role      string `json:"role"` // raw, intensity-map, spectrum, element-map, ...
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256,omitempty"`
}

// Provenance says what made a record: which build of which analysis, with
// which settings and outside programs, from which input, in which run and
// on which machine. Two records with the same provenance (input, version,
// parameters, software) hold the same results.
type Provenance struct {
	// Analysis names it ("picoflow hyperspectral").
	Analysis string `json:"analysis"`
	// Version is the picoflow build's module version ("v0.3.1", a
	// pseudo-version, or "devel"); Revision its VCS commit.
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	// Parameters are the settings used, defaults resolved.
	Parameters map[string]any `json:"parameters,omitempty"`
	// Software are the outside programs and libraries used, with versions.
	Software []Software `json:"software,omitempty"`
	Input    Input      `json:"input"`
	// Flow and Run are the flow run that made the record; Machine the
	// host (server) or compute endpoint it ran on.
	Flow     string    `json:"flow,omitempty"`
	Run      string    `json:"run,omitempty"`
	Machine  string    `json:"machine,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Degraded lists the outside parts that were missing, and what the
	// record lacks for it ("ffmpeg: not installed, no video"). A degraded
	// record is re-run once the part is installed.
	Degraded []string `json:"degraded,omitempty"`
}

// Software is an outside program or library an analysis used.
type Software struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Input is the file an analysis read.
type Input struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Rights is a DataCite rights entry: a licence name or SPDX identifier.
type Rights struct {
	Rights           string `json:"rights"`
	RightsIdentifier string `json:"rightsIdentifier,omitempty"`
	SchemeURI        string `json:"schemeUri,omitempty"`
}

// License returns a rights entry for a licence as people write it: an SPDX
// identifier (CC-BY-4.0) is recorded as one.
func License(s string) Rights {
	r := Rights{Rights: s}
	if s != "" && !strings.ContainsAny(s, " \t") {
		r.RightsIdentifier, r.SchemeURI = s, "https://spdx.org/licenses/"
	}
	return r
}

// Edit is one change people made to a record.
type Edit struct {
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Changes []string  `json:"changes"`
}

// Operator is the record's first personal creator ("" when none).
func (r *Record) Operator() string {
	for _, c := range r.Creators {
		if c.NameType == "Personal" {
			return c.Name
		}
	}
	return ""
}

// Subject returns the subject of a scheme ("sample", "proposal"), or "".
func (r *Record) Subject(scheme string) string {
	for _, s := range r.Subjects {
		if s.SubjectScheme == scheme {
			return s.Subject
		}
	}
	return ""
}

// Keywords are the subjects people gave (scheme "keyword").
func (r *Record) Keywords() []string {
	var out []string
	for _, s := range r.Subjects {
		if s.SubjectScheme == "keyword" {
			out = append(out, s.Subject)
		}
	}
	return out
}

// UserDescription is the description people wrote (an Abstract), or "".
func (r *Record) UserDescription() string {
	for _, d := range r.Descriptions {
		if d.DescriptionType == "Abstract" {
			return d.Description
		}
	}
	return ""
}

// Describe sets what people say about the record: the description (an
// Abstract, before the technical one), keywords, sample and licence.
func (r *Record) Describe(description string, keywords []string, sample, license string) {
	var ds []Description
	if description != "" {
		ds = append(ds, Description{Description: description, DescriptionType: "Abstract"})
	}
	for _, d := range r.Descriptions {
		if d.DescriptionType != "Abstract" {
			ds = append(ds, d)
		}
	}
	r.Descriptions = ds
	var subs []Subject
	for _, s := range r.Subjects {
		if s.SubjectScheme != "keyword" && s.SubjectScheme != "sample" {
			subs = append(subs, s)
		}
	}
	if sample != "" {
		subs = append(subs, Subject{Subject: sample, SubjectScheme: "sample"})
	}
	for _, k := range keywords {
		if k = strings.TrimSpace(k); k != "" {
			subs = append(subs, Subject{Subject: k, SubjectScheme: "keyword"})
		}
	}
	r.Subjects = subs
	r.RightsList = nil
	if license != "" {
		r.RightsList = []Rights{License(license)}
	}
	// The title says what the sample is: "PtNi octahedra on C: EDS
	// spectrum image: si_0009.emd"; the technical title stays as the
	// alternative one.
	technical := ""
	for _, t := range r.Titles {
		if t.TitleType == "AlternativeTitle" {
			technical = t.Title
		}
	}
	if technical == "" && len(r.Titles) > 0 {
		technical = r.Titles[0].Title
	}
	if technical == "" {
		return
	}
	r.Titles = []Title{{Title: technical}}
	if sample != "" {
		r.Titles = []Title{{Title: sample + ": " + technical}, {Title: technical, TitleType: "AlternativeTitle"}}
	}
}

// License is the record's licence as written, or "".
func (r *Record) License() string {
	if len(r.RightsList) > 0 {
		return r.RightsList[0].Rights
	}
	return ""
}

// RelatedIdentifier is a DataCite related identifier.
type RelatedIdentifier struct {
	RelatedIdentifier     string `json:"relatedIdentifier"`
	RelatedIdentifierType string `json:"relatedIdentifierType"`
	RelationType          string `json:"relationType"`
	// SHA256 is the related file's content hash, when known.
	SHA256 string `json:"sha256,omitempty"`
}

// DerivedFrom is what this record was derived from (nil when nothing).
func (r *Record) DerivedFrom() *RelatedIdentifier {
	for i, ri := range r.RelatedIdentifiers {
		if ri.RelationType == "IsDerivedFrom" {
			return &r.RelatedIdentifiers[i]
		}
	}
	return nil
}
