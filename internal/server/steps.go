package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/checksum"
	"github.com/picoflow/picoflow/internal/command"
	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/record"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/upload/tusserver"
)

// stepTypes is the server's registry of step implementations.
func (s *Server) stepTypes() map[string]flow.StepType {
	return map[string]flow.StepType{
		"transfer": {Func: s.transferStep},
		"analyze":  {Func: s.analyzeStep, Queue: flow.QueueAnalyze, Check: checkAnalyze},
		"publish":  {Func: s.publishStep, Check: checkPublish},
		"notify":   {Func: s.notifyStep},
		"command":  {Func: s.commandStep, Queue: flow.QueueAnalyze, Check: checkWhere},
	}
}

// TransferOutput is the output of the transfer step.
type TransferOutput struct {
	Path     string  `json:"path"`
	Bytes    int64   `json:"bytes"`
	SHA256   string  `json:"sha256"`
	MBPerSec float64 `json:"verify_mb_per_s,omitempty"` // when the file was read to verify it
	// Verified says how the SHA-256 was checked: "on arrival" (hashed by
	// the upload server as the bytes landed) or "file" (read back here).
	Verified string `json:"verified"`
}

// storedPath is where a run's file is kept: by day received, prefixed by
// its content hash so two files of the same name never collide, the name
// cut to fit the file system's 255-byte limit (the whole name stays in the
// run and the record).
func (s *Server) storedPath(r *flow.Run) string {
	return filepath.Join(s.rawDir(), r.Created.Format("2006/01/02"), boundedName(r.SHA256[:12]+"_"+safeName(r.FileName)))
}

// maxStoredName is the longest file name we write, in bytes: below the
// common 255-byte limit, with room for suffixes (.tmp, .info).
const maxStoredName = 200

// boundedName cuts a file name to maxStoredName bytes at a UTF-8 boundary,
// keeping its extension (up to 16 bytes) so its type stays recognisable.
func boundedName(n string) string {
	if len(n) <= maxStoredName {
		return n
	}
	ext := filepath.Ext(n)
	if len(ext) > 16 {
		ext = ""
	}
	stem := n[:len(n)-len(ext)]
	cut := maxStoredName - len(ext)
	for cut > 0 && !utf8.RuneStart(stem[cut]) {
		cut--
	}
	return stem[:cut] + ext
}

func safeName(n string) string {
	n = filepath.Base(strings.ReplaceAll(n, "\\", "/"))
	out := []rune{}
	for _, c := range n {
		if c < 32 || strings.ContainsRune(`/\:*?"<>|`, c) {
			c = '_'
		}
		out = append(out, c)
	}
	if len(out) == 0 || n == "." || n == ".." {
		return "file"
	}
	return string(out)
}

// transferStep verifies the uploaded bytes against the SHA-256 the agent
// computed at the source and moves them into the raw store. It is
// idempotent: after a crash past the move it re-verifies the stored file.
func (s *Server) transferStep(ctx context.Context, sr *flow.StepRun) (any, error) {
	r := sr.Run
	dest := s.storedPath(r)
	if r.UploadID == "" && r.StoredPath != "" {
		// A re-analysis: the content is in the raw store already; it is
		// read back and verified against its SHA-256 before it is used.
		dest = r.StoredPath
	}
	src := dest
	up, err := s.uploads.Get(ctx, r.UploadID)
	if r.UploadID == "" {
		up, err = nil, tusserver.ErrNotFound
	}
	switch {
	case err == nil:
		if !up.Complete() {
			return nil, fmt.Errorf("upload %s has %d of %d bytes: %w", r.UploadID, up.Offset, up.Size, flow.ErrPermanent)
		}
		src = up.Path
	case errors.Is(err, tusserver.ErrNotFound):
		if _, statErr := os.Stat(dest); statErr != nil {
			if r.UploadID == "" {
				return nil, fmt.Errorf("the stored file %s is missing: %w", dest, flow.ErrPermanent)
			}
			return nil, fmt.Errorf("upload %s is gone and %s does not exist: %w", r.UploadID, dest, flow.ErrPermanent)
		}
	default:
		return nil, err
	}
	start := time.Now()
	var sum string
	var n int64
	how := "on arrival"
	if up != nil {
		// Hashed by the server as the bytes arrived (read back from the
		// file after writing), so the file is not read a second time.
		sum, n = s.uploads.Digest(up), up.Size
	}
	rate := 0.0
	if sum == "" {
		how = "file"
		if sum, n, err = checksum.File(ctx, src); err != nil {
			return nil, fmt.Errorf("verify %s: %w", src, err)
		}
		rate = float64(n) / 1e6 / max(time.Since(start).Seconds(), 1e-9)
	}
	if sum != r.SHA256 && up == nil && r.UploadID == "" {
		// The raw store's copy changed: leave it where it is for the
		// facility to look at, and analyse nothing from it.
		return nil, fmt.Errorf("the stored file %s no longer matches its sha256 %s (it hashes to %s): %w", src, r.SHA256, sum, flow.ErrPermanent)
	}
	if sum != r.SHA256 {
		// Keep the bytes for inspection; never delete data.
		q := s.quarantine(src, r.ID+"_"+r.FileName)
		return nil, fmt.Errorf("checksum mismatch: the agent sent sha256 %s, the server received %s (%d bytes, kept in %s): %w", r.SHA256, sum, n, q, flow.ErrPermanent)
	}
	if n != r.Size && r.Size > 0 {
		return nil, fmt.Errorf("size mismatch: %d bytes declared, %d received: %w", r.Size, n, flow.ErrPermanent)
	}
	if src != dest {
		if err := os.MkdirAll(filepath.Dir(dest), 0o750); err != nil {
			return nil, err
		}
		if err := os.Rename(src, dest); err != nil {
			return nil, fmt.Errorf("store %s: %w", dest, err)
		}
		if err := s.uploads.Remove(r.UploadID); err != nil {
			s.log.Warn("remove upload bookkeeping", "upload", r.UploadID, "error", err)
		}
	}
	if err := s.Engine.SetStoredPath(ctx, r.ID, dest); err != nil {
		return nil, err
	}
	return TransferOutput{Path: dest, Bytes: n, SHA256: sum, MBPerSec: rate, Verified: how}, nil
}

// AnalyzeOutput is the output of the analyze step.
type AnalyzeOutput struct {
	Record *record.Record `json:"record"`
	Dir    string         `json:"dir"`
	// Where names the compute endpoint that ran it ("" on the server).
	Where string `json:"where,omitempty"`
}

func (s *Server) runProducts(runID string) string { return filepath.Join(s.productsDir(), runID) }

// whereEndpoint reads a step's where parameter: server (the default) or
// endpoint.
func whereEndpoint(sr *flow.StepRun) (bool, error) {
	switch w := stepParams(sr)["where"]; w {
	case nil, "server":
		return false, nil
	case "endpoint":
		return true, nil
	default:
		return false, flow.Permanent(fmt.Errorf("step %s: where must be server or endpoint, not %v", sr.Def.Name, w))
	}
}

// stored returns the transfer step's output: where the run's file is kept.
func stored(sr *flow.StepRun) (TransferOutput, error) {
	var tr TransferOutput
	for _, o := range sr.Outputs {
		var t TransferOutput
		if json.Unmarshal(o, &t) == nil && t.Path != "" {
			tr = t
		}
	}
	if tr.Path == "" {
		tr.Path = sr.Run.StoredPath
	}
	if tr.Path == "" {
		return tr, fmt.Errorf("no stored file for run %s: %w", sr.Run.ID, flow.ErrPermanent)
	}
	return tr, nil
}

// analyzeStep runs the analysis of the stored file in a memory-limited
// worker process (or hands it to a compute endpoint: where: endpoint). Bad
// input fails the run at once with the reader's message.
func (s *Server) analyzeStep(ctx context.Context, sr *flow.StepRun) (any, error) {
	tr, err := stored(sr)
	if err != nil {
		return nil, err
	}
	dir := s.runProducts(sr.Run.ID)
	// The creator is the operator the instrument side names; without one
	// the record names the instrument (never the agent's host, which is
	// not a person).
	operator, _ := sr.Run.Meta["operator"].(string)
	opt := analysis.Options{Creator: operator, Name: sr.Run.FileName, Model: s.cfg.Model, ORTLibrary: s.cfg.ORTLibrary, SHA256: tr.SHA256,
		Params: analysisParams(sr)}
	onEndpoint, err := whereEndpoint(sr)
	if err != nil {
		return nil, err
	}
	if onEndpoint {
		return s.remote(ctx, sr, "analyze", tr.Path, opt)
	}
	rec, err := analysis.RunIsolated(ctx, s.cfg.Workers, tr.Path, dir, opt, sandbox.Limits{Memory: s.cfg.AnalysisMemory})
	if err != nil {
		// Name the file as the operator knows it, not the server's copy.
		err = renamed{err, strings.ReplaceAll(err.Error(), tr.Path, sr.Run.FileName)}
		if errors.Is(err, emd.ErrFormat) || errors.Is(err, emd.ErrUnsupported) || errors.Is(err, emd.ErrTooLarge) || errors.Is(err, analysis.ErrParams) ||
			errors.Is(err, emd.ErrNotFound) || errors.Is(err, sandbox.ErrOutOfMemory) || errors.Is(err, sandbox.ErrCrashed) {
			return nil, flow.Permanent(err)
		}
		return nil, err
	}
	return AnalyzeOutput{Record: rec, Dir: dir}, nil
}

// RunParams is the run metadata key of the analysis parameters a
// re-analysis sets (map of name to value); they override the flow step's.
const RunParams = "params"

// RunRecord is the run metadata key of the record a re-analysis makes a new
// version of.
const RunRecord = "record_id"

// stepParams are a step's parameters: the flow step's, overridden by the
// run's (a re-analysis campaign's choices, where included).
func stepParams(sr *flow.StepRun) map[string]any {
	m, ok := sr.Run.Meta[RunParams].(map[string]any)
	if !ok || len(m) == 0 {
		return sr.Def.Params
	}
	out := maps.Clone(sr.Def.Params)
	if out == nil {
		out = map[string]any{}
	}
	maps.Copy(out, m)
	return out
}

// analysisParams are the analysis parameters of a step (stepParams but
// where), as text.
func analysisParams(sr *flow.StepRun) map[string]string {
	out := map[string]string{}
	addAnalysisParams(out, stepParams(sr))
	if len(out) == 0 {
		return nil
	}
	return out
}

// addAnalysisParams adds a step's or a run's parameters, as text, to the
// analysis parameters: all but where, which says where the step runs.
func addAnalysisParams(dst map[string]string, params map[string]any) {
	for k, v := range params {
		if k != "where" {
			dst[k] = fmt.Sprint(v)
		}
	}
}

// renamed is an error with a rewritten message.
type renamed struct {
	err error
	msg string
}

func (r renamed) Error() string { return r.msg }
func (r renamed) Unwrap() error { return r.err }

// PublishOutput is the output of the publish step.
type PublishOutput struct {
	RecordID  string   `json:"record_id"`
	Version   int      `json:"version"`
	VisibleTo []string `json:"visible_to"`
	// Degraded names the outside parts the analysis lacked: the run
	// succeeded, but its record is incomplete until it is re-run.
	Degraded []string `json:"degraded,omitempty"`
}

// checkWhere checks the where parameter of an analyze or command step.
func checkWhere(params map[string]any) error {
	switch w := params["where"]; w {
	case nil, "server", "endpoint":
		return nil
	default:
		return fmt.Errorf("where must be server or endpoint, not %v", w)
	}
}

// checkAnalyze checks an analyze step's parameters: where, and analysis
// parameters by name.
func checkAnalyze(params map[string]any) error {
	if err := checkWhere(params); err != nil {
		return err
	}
	p := map[string]string{}
	addAnalysisParams(p, params)
	return analysis.CheckParams(p)
}

// checkPublish checks a publish step's visible_to: a list of principals
// (user:NAME, group:NAME, agent:NAME, role:NAME) or public.
func checkPublish(params map[string]any) error {
	for k := range params {
		if k != "visible_to" {
			return fmt.Errorf("unknown parameter %q (publish takes visible_to)", k)
		}
	}
	v, ok := params["visible_to"]
	if !ok {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("visible_to must be a list of principals, e.g. [\"group:picoprobe\"], not %v", v)
	}
	if len(list) == 0 {
		return errors.New("visible_to is empty: the records would be visible to administrators only; leave it out to say so")
	}
	for i, p := range list {
		switch p := p.(type) {
		case string:
			if p != catalog.Public && !auth.ValidPrincipal(p) {
				return fmt.Errorf("visible_to[%d] %q is not a principal (user:, group:, agent:, role: followed by a name) or public", i, p)
			}
		case map[string]any:
			// [group:picoprobe] in YAML's flow style is a map.
			for k, val := range p {
				return fmt.Errorf("visible_to[%d] was read as a map {%s: %v}: quote principals in YAML, e.g. [\"%s:%v\"]", i, k, val, k, val)
			}
			return fmt.Errorf("visible_to[%d] is an empty map", i)
		default:
			return fmt.Errorf("visible_to[%d] is %v, not a principal", i, p)
		}
	}
	return nil
}

// visibleTo reads a publish step's visible_to parameter (checked when the
// flows were loaded, see validatePublish), or def when it has none.
func visibleTo(params map[string]any, def []string) []string {
	v, ok := params["visible_to"].([]any)
	if !ok {
		return def
	}
	var out []string
	for _, p := range v {
		if ps, ok := p.(string); ok && (ps == catalog.Public || auth.ValidPrincipal(ps)) {
			out = append(out, ps)
		}
	}
	return out
}

// publishStep puts the analysed record into the catalog. Params:
// visible_to (list of principals).
func (s *Server) publishStep(ctx context.Context, sr *flow.StepRun) (any, error) {
	var an AnalyzeOutput
	for _, o := range sr.Outputs {
		var a AnalyzeOutput
		if json.Unmarshal(o, &a) == nil && a.Record != nil {
			an = a
		}
	}
	if an.Record == nil {
		return nil, fmt.Errorf("no analysed record for run %s: %w", sr.Run.ID, flow.ErrPermanent)
	}
	visible := visibleTo(sr.Def.Params, s.cfg.VisibleTo)
	for _, o := range sr.Outputs {
		var c CommandOutput
		if json.Unmarshal(o, &c) != nil || c.Command == "" {
			continue
		}
		for _, p := range c.Products {
			an.Record.Files = append(an.Record.Files, record.File{Name: p.Name, Role: "command:" + c.Command,
				MediaType: cmp.Or(mime.TypeByExtension(filepath.Ext(p.Name)), "application/octet-stream"), Size: p.Size, SHA256: p.SHA256})
		}
	}
	// A re-analysis publishes a new version of its record; a first
	// analysis starts a record named after its run.
	id := sr.Run.ID
	if rid, _ := sr.Run.Meta[RunRecord].(string); rid != "" {
		id = rid
	}
	if p := an.Record.Provenance; p != nil {
		p.Flow, p.Run, p.Machine = sr.Run.Flow, sr.Run.ID, cmp.Or(an.Where, s.hostname)
	}
	e := &catalog.Entry{ID: id, Record: an.Record, VisibleTo: visible, RunID: sr.Run.ID, SHA256: sr.Run.SHA256}
	// What the instrument side says of the experiment (agent settings per
	// folder, a sidecar file): proposal, sample and keywords as subjects
	// (shown and searchable), the description, the licence.
	str := func(k string) string { v, _ := sr.Run.Meta[k].(string); return v }
	if v := str("proposal"); v != "" && e.Record.Subject("proposal") == "" {
		e.Record.Subjects = append(e.Record.Subjects, record.Subject{Subject: v, SubjectScheme: "proposal"})
	}
	var keywords []string
	if kw := str("keywords"); kw != "" {
		keywords = strings.Split(kw, ",")
	}
	e.Record.Describe(str("description"), keywords, str("sample"), str("license"))
	if sum := str("derived_from"); sum != "" && sum != sr.Run.SHA256 {
		// The raw data's record, by its content (any flow that received it).
		ri := record.RelatedIdentifier{RelationType: "IsDerivedFrom", RelatedIdentifierType: "SHA256", RelatedIdentifier: sum, SHA256: sum}
		if raws, err := s.Engine.Runs(ctx, flow.ListQuery{SHA256: sum, Uploads: true, All: true, Limit: 5}); err == nil {
			for _, r := range raws {
				if r.RecordID != "" {
					ri.RelatedIdentifier, ri.RelatedIdentifierType = r.RecordID, "picoflow record"
					break
				}
			}
		}
		e.Record.RelatedIdentifiers = []record.RelatedIdentifier{ri}
	}
	if id != sr.Run.ID {
		// A re-analysis keeps what people wrote into the record since.
		if cur, err := s.Catalog.Get(ctx, id, []string{auth.RoleAdmin}); err == nil {
			c := cur.Record
			e.Record.Describe(c.UserDescription(), c.Keywords(), c.Subject("sample"), c.License())
			e.Record.Edits = c.Edits
			e.Record.RelatedIdentifiers = c.RelatedIdentifiers
			if op := c.Operator(); op != "" && e.Record.Operator() == "" {
				e.Record.Creators = []record.Creator{{Name: op, NameType: "Personal"}}
			}
		}
	}
	// The agent's --instrument is the facility's name for the microscope:
	// it wins over the acquisition PC's name the file carries.
	if sr.Run.Instrument != "" {
		e.Record.Instrument.Name = sr.Run.Instrument
	}
	if err := s.Catalog.Put(ctx, e); err != nil {
		if errors.Is(err, catalog.ErrInvalid) {
			return nil, flow.Permanent(err)
		}
		return nil, err
	}
	out := PublishOutput{RecordID: e.ID, Version: e.Version, VisibleTo: visible}
	if p := an.Record.Provenance; p != nil {
		out.Degraded = p.Degraded
	}
	return out, nil
}

// Alert is a message for the operator at the instrument.
type Alert struct {
	Level   string `json:"level"` // info, warning
	Message string `json:"message"`
}

// NotifyOutput is the output of the notify step.
type NotifyOutput struct {
	Alerts []Alert `json:"alerts"`
}

// notifyStep turns the analysis warnings into operator alerts; agents show
// them when they learn the run finished.
func (s *Server) notifyStep(ctx context.Context, sr *flow.StepRun) (any, error) {
	out := NotifyOutput{Alerts: []Alert{}}
	for _, o := range sr.Outputs {
		var a AnalyzeOutput
		if json.Unmarshal(o, &a) == nil && a.Record != nil && a.Record.Analysis != nil {
			for _, w := range a.Record.Analysis.Warnings {
				out.Alerts = append(out.Alerts, Alert{Level: "warning", Message: w})
			}
			if p := a.Record.Provenance; p != nil {
				for _, d := range p.Degraded {
					out.Alerts = append(out.Alerts, Alert{Level: "warning", Message: "setup at the facility: " + d})
				}
			}
			if len(a.Record.Analysis.Elements) > 0 {
				out.Alerts = append(out.Alerts, Alert{Level: "info", Message: "elements: " + strings.Join(a.Record.Analysis.Elements, ", ")})
			}
		}
	}
	return out, nil
}

// CommandOutput is the output of a command step: the configured command's
// result (its products are in the run's products directory).
type CommandOutput struct {
	command.Result
	// Where ran it: "server" or the endpoint's name.
	Where string `json:"where"`
}

// commandStep runs a command the facility configured (params: command, the
// name; where: server, the default, or endpoint). The flow names the
// command; the command line is the server's or the endpoint's own.
func (s *Server) commandStep(ctx context.Context, sr *flow.StepRun) (any, error) {
	name, _ := sr.Def.Params["command"].(string)
	if name == "" {
		return nil, flow.Permanent(fmt.Errorf("step %s: no params.command", sr.Def.Name))
	}
	tr, err := stored(sr)
	if err != nil {
		return nil, err
	}
	onEndpoint, err := whereEndpoint(sr)
	if err != nil {
		return nil, err
	}
	if onEndpoint {
		return s.remote(ctx, sr, "command", tr.Path, map[string]string{"command": name})
	}
	dir := s.runProducts(sr.Run.ID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(dir, ".command-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	res, err := s.cfg.Commands.Run(ctx, name, command.Input{Path: tr.Path, OutDir: work, FileName: sr.Run.FileName, RunID: sr.Run.ID, SHA256: tr.SHA256,
		Memory: s.cfg.CommandMemory})
	if errors.Is(err, command.ErrUnknown) {
		return nil, flow.Permanent(fmt.Errorf("on this server: %w", err))
	}
	if err != nil {
		return nil, err
	}
	for _, p := range res.Products {
		if err := os.Rename(filepath.Join(work, p.Name), filepath.Join(dir, p.Name)); err != nil {
			return nil, err
		}
	}
	return CommandOutput{Result: *res, Where: "server"}, nil
}
