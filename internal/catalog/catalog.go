// Package catalog holds published records and finds them: free text, date
// range, facets (month, instrument, experiment type, element) and per-record
// access control. Index is the seam; catalog/sqlite (FTS5, the embedded
// default) implements it, and catalogtest holds the suite every backend
// passes.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/picoflow/picoflow/internal/record"
)

// Errors returned by Index implementations.
var (
	// ErrNotFound means no record with that id is visible to the caller.
	ErrNotFound = errors.New("record not found")
	// ErrInvalid means an entry or query is malformed.
	ErrInvalid = errors.New("invalid catalog request")
)

// Principals. A record's VisibleTo lists who may see it.
const (
	// Public records are visible to everyone, signed in or not.
	Public = "public"
	// Admin sees every record.
	Admin = "role:admin"
)

// Entry is one published record with its access list.
type Entry struct {
	ID        string         `json:"id"`
	Record    *record.Record `json:"record"`
	VisibleTo []string       `json:"visible_to"`
	RunID     string         `json:"run_id,omitempty"`
	SHA256    string         `json:"sha256,omitempty"`
	Published time.Time      `json:"published"`
	// Version counts the record's publications from 1 (set by Put and Get):
	// a re-analysis makes a new version, the newest is the record.
	Version int `json:"version"`
	// NewVersion makes Put add a version even for a run that published
	// one already (an edit of the record's description).
	NewVersion bool `json:"-"`
}

// AnalysisVersion is the version of the analysis that made the record ("" when
// it does not say).
func (e *Entry) AnalysisVersion() string {
	if e.Record == nil || e.Record.Provenance == nil {
		return ""
	}
	return e.Record.Provenance.Version
}

// Title returns the record's main title.
func (e *Entry) Title() string {
	if e.Record != nil && len(e.Record.Titles) > 0 {
		return e.Record.Titles[0].Title
	}
	return e.ID
}

// Description returns the record's abstract.
func (e *Entry) Description() string {
	if e.Record != nil && len(e.Record.Descriptions) > 0 {
		return e.Record.Descriptions[0].Description
	}
	return ""
}

// Created is the acquisition time when known, else the publication time.
func (e *Entry) Created() time.Time {
	if e.Record != nil && e.Record.Instrument.AcquisitionStart != nil {
		return e.Record.Instrument.AcquisitionStart.UTC()
	}
	return e.Published.UTC()
}

// Kind is the experiment type (the analysis kind, e.g. "hyperspectral").
func (e *Entry) Kind() string {
	if e.Record != nil && e.Record.Analysis != nil {
		return e.Record.Analysis.Kind
	}
	if e.Record != nil {
		return e.Record.ResourceType.ResourceType
	}
	return ""
}

// Instrument names the microscope.
func (e *Entry) Instrument() string {
	if e.Record == nil {
		return ""
	}
	return strings.TrimSpace(e.Record.Instrument.Name)
}

// Elements are the identified chemical elements.
func (e *Entry) Elements() []string {
	if e.Record == nil || e.Record.Analysis == nil {
		return nil
	}
	return e.Record.Analysis.Elements
}

// Keywords are the record's subjects, for free-text search.
func (e *Entry) Keywords() string {
	if e.Record == nil {
		return ""
	}
	var b strings.Builder
	for _, s := range e.Record.Subjects {
		b.WriteString(s.Subject)
		b.WriteByte(' ')
	}
	for _, c := range e.Record.Creators {
		b.WriteString(c.Name)
		b.WriteByte(' ')
	}
	// The records it derives from, so theirs find it by id.
	for _, ri := range e.Record.RelatedIdentifiers {
		b.WriteString(ri.RelatedIdentifier)
		b.WriteByte(' ')
	}
	// The microscope as the file names it (Titan, Spectra, ...).
	in := e.Record.Instrument
	for _, s := range []string{in.Name, in.Manufacturer, in.Model, in.Software} {
		b.WriteString(s)
		b.WriteByte(' ')
	}
	return b.String()
}

// Measure returns a number of the record a field query compares (see
// Fields), in the field's unit, and whether the record has it.
func (e *Entry) Measure(field string) (float64, bool) {
	if e.Record == nil {
		return 0, false
	}
	in := e.Record.Instrument
	switch field {
	case FieldVoltage:
		if in.AcceleratingVoltage != nil {
			return in.AcceleratingVoltage.Value, true
		}
	case FieldMagnification:
		if in.Magnification != nil {
			return in.Magnification.Value, true
		}
	}
	return 0, false
}

// Fields a query compares with numbers (Range), with their units.
const (
	FieldVoltage       = "voltage"       // accelerating voltage, kV
	FieldMagnification = "magnification" // ×
)

// RangeColumn is the column (voltage_kv, magnification: the same in every
// backend) and operator of a range, taken from fixed lists only, so a
// range is never SQL text; ok is false for anything else.
func RangeColumn(rg Range) (col, op string, ok bool) {
	col, ok = map[string]string{FieldVoltage: "voltage_kv", FieldMagnification: "magnification"}[rg.Field]
	if !ok || !slices.Contains([]string{"<", "<=", ">", ">=", "="}, rg.Op) {
		return "", "", false
	}
	return col, rg.Op, true
}

// Range is a comparison of a numeric field: voltage >= 200 (kV).
type Range struct {
	Field string
	// Op is one of < <= > >= =.
	Op    string
	Value float64
}

// Validate checks the fields every backend relies on.
func (e *Entry) Validate() error {
	switch {
	case e.ID == "" || len(e.ID) > 200:
		return errors.Join(ErrInvalid, errors.New("entry id must be 1-200 characters"))
	case e.Record == nil:
		return errors.Join(ErrInvalid, errors.New("entry has no record"))
	case len(e.VisibleTo) == 0:
		return errors.Join(ErrInvalid, errors.New("entry is visible to nobody"))
	}
	return nil
}

// Sort orders of a search.
const (
	SortNewest    = "newest"
	SortOldest    = "oldest"
	SortRelevance = "relevance"
)

// Query is a search. Zero fields do not filter.
type Query struct {
	// Text is free text: words are ANDed, "quoted phrases" kept, a trailing *
	// is a prefix. Other query syntax is treated as plain words.
	Text string
	// From and To bound the acquisition time, [From, To).
	From, To time.Time
	// Facet filters: a record matches if it has any listed instrument and
	// any listed kind, and all listed elements.
	Instruments, Kinds, Elements []string
	// Principals are the caller's identities ("user:alice",
	// "group:picoprobe", Admin). Public is always added.
	Principals []string
	// Ranges compare numeric fields (every one must hold; a record
	// without the field does not match).
	Ranges []Range
	// MadeBefore keeps records whose newest version was made by an analysis
	// version before this one (semantic versions, pseudo-versions by time;
	// see buildinfo.SortKey). Records of unversioned builds never match.
	MadeBefore string
	// Sort is SortNewest (default), SortOldest or SortRelevance.
	Sort string
	// Limit (default 20, at most 200) and Offset page the hits.
	Limit, Offset int
}

// Hit is one search result.
type Hit struct {
	ID          string    `json:"id"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
	Instrument  string    `json:"instrument"`
	Kind        string    `json:"kind"`
	Elements    []string  `json:"elements"`
}

// FacetValue is one value of a facet with its hit count.
type FacetValue struct {
	Value string `json:"value"`
	Count int    `json:"count"`
}

// Facet names in Result.Facets.
const (
	FacetMonth      = "month" // "2026-11"
	FacetInstrument = "instrument"
	FacetKind       = "kind"
	FacetElement    = "element"
)

// Result is a page of hits with facet counts over all matching records.
type Result struct {
	Total  int                     `json:"total"`
	Hits   []Hit                   `json:"hits"`
	Facets map[string][]FacetValue `json:"facets"`
}

// Index stores and searches entries. A Put of an existing ID makes a new
// version of the record, which becomes the entry, unless a version came from
// the same run (a non-empty RunID): that version is replaced, so a retried
// publication is idempotent. Get, Search and Versions return only entries
// visible to the principals (through the newest version's access list); Get
// and Versions return ErrNotFound otherwise. Delete removes every version.
type Index interface {
	Put(ctx context.Context, e *Entry) error
	Get(ctx context.Context, id string, principals []string) (*Entry, error)
	// Versions returns every version of a record, newest first.
	Versions(ctx context.Context, id string, principals []string) ([]*Entry, error)
	Search(ctx context.Context, q Query) (*Result, error)
	Delete(ctx context.Context, id string) error
}

// GetVersion returns one version of a record (0: the newest).
func GetVersion(ctx context.Context, x Index, id string, version int, principals []string) (*Entry, error) {
	if version == 0 {
		return x.Get(ctx, id, principals)
	}
	vs, err := x.Versions(ctx, id, principals)
	if err != nil {
		return nil, err
	}
	for _, v := range vs {
		if v.Version == version {
			return v, nil
		}
	}
	return nil, fmt.Errorf("catalog get %s version %d: %w", id, version, ErrNotFound)
}

// Normalize applies a query's defaults and bounds.
func (q Query) Normalize() Query {
	if q.Limit <= 0 {
		q.Limit = 20
	}
	q.Limit = min(q.Limit, 200)
	q.Offset = max(q.Offset, 0)
	switch q.Sort {
	case SortOldest, SortRelevance:
	default:
		q.Sort = SortNewest
	}
	if !slices.Contains(q.Principals, Public) {
		q.Principals = append(slices.Clone(q.Principals), Public)
	}
	return q
}

// CanSee reports whether principals may see an entry visible to visibleTo.
func CanSee(principals, visibleTo []string) bool {
	if slices.Contains(principals, Admin) || slices.Contains(visibleTo, Public) {
		return true
	}
	for _, p := range principals {
		if slices.Contains(visibleTo, p) {
			return true
		}
	}
	return false
}

// BatchPutter is an optional capability of an Index: many entries in one
// transaction, for bulk loads.
type BatchPutter interface {
	PutMany(ctx context.Context, es []*Entry) error
}
