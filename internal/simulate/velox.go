package simulate

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"

	"github.com/scigolib/hdf5"
)

// veloxWriter writes the subset of the Velox EMD v4 layout that readers
// (ours, RosettaSciIO/HyperSpy) need. Datasets are uncompressed and carry no
// HDF5 attributes, the combination the pure-Go writer produces correctly.
type veloxWriter struct {
	fw *hdf5.FileWriter
}

func newVeloxWriter(path string) (*veloxWriter, error) {
	fw, err := hdf5.CreateForWrite(path, hdf5.CreateTruncate, hdf5.WithSuperblockVersion(0))
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	w := &veloxWriter{fw: fw}
	for _, g := range []string{"/Data", "/Data/Image", "/Operations", "/Operations/StemInputOperation",
		"/Presentation", "/Presentation/Displays", "/Presentation/Displays/ImageDisplay"} {
		if _, err := fw.CreateGroup(g); err != nil {
			fw.Close()
			return nil, fmt.Errorf("create group %s: %w", g, err)
		}
	}
	if err := w.jsonString("/Version", map[string]string{"version": "4", "format": "Velox"}); err != nil {
		return nil, err
	}
	if err := w.jsonString("/Info", map[string]string{"applicationVersion": "picoflow-simulate 1"}); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *veloxWriter) Close() error { return w.fw.Close() }

func (w *veloxWriter) group(p string) error {
	if _, err := w.fw.CreateGroup(p); err != nil {
		return fmt.Errorf("create group %s: %w", p, err)
	}
	return nil
}

// jsonString writes a one-element variable-length string dataset.
func (w *veloxWriter) jsonString(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	ds, err := w.fw.CreateDataset(path, hdf5.VLenString, []uint64{1})
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := ds.Write([]string{string(b)}); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// metadata writes a (60000, frames) uint8 dataset whose every column holds
// the NUL-padded JSON document md.
func (w *veloxWriter) metadata(path string, md any, frames int) error {
	b, err := json.Marshal(md)
	if err != nil {
		return err
	}
	const rows = 60000
	if len(b) >= rows {
		return fmt.Errorf("metadata of %d bytes does not fit", len(b))
	}
	buf := make([]byte, rows*frames)
	for i, c := range b {
		for f := 0; f < frames; f++ {
			buf[i*frames+f] = c
		}
	}
	ds, err := w.fw.CreateDataset(path, hdf5.Uint8, []uint64{rows, uint64(frames)}, hdf5.WithChunkDims([]uint64{rows, 1}))
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if err := ds.WriteRaw(buf); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// image writes /Data/Image/<uuid>/{Data,Metadata} plus the operation and
// display that name it, and returns the group path. data is (H, W, F) in
// Velox's order: frame index fastest.
func (w *veloxWriter) image(title string, dtype hdf5.Datatype, raw []byte, h, wd, frames int, md any) (string, error) {
	id := uuid()
	g := "/Data/Image/" + id
	if err := w.group(g); err != nil {
		return "", err
	}
	ds, err := w.fw.CreateDataset(g+"/Data", dtype, []uint64{uint64(h), uint64(wd), uint64(frames)}, hdf5.WithChunkDims([]uint64{uint64(h), uint64(wd), 1}))
	if err != nil {
		return "", fmt.Errorf("create image: %w", err)
	}
	if err := ds.WriteRaw(raw); err != nil {
		return "", fmt.Errorf("write image: %w", err)
	}
	if err := w.metadata(g+"/Metadata", md, frames); err != nil {
		return "", err
	}
	if err := w.jsonString("/Operations/StemInputOperation/"+uuid(), map[string]any{"dataPath": g, "detector": title}); err != nil {
		return "", err
	}
	return g, w.jsonString("/Presentation/Displays/ImageDisplay/"+uuid(), map[string]any{
		"display": map[string]string{"id": title, "label": title}, "dataPath": g,
	})
}

// stream writes a SpectrumStream and its SpectrumImage settings.
func (w *veloxWriter) stream(events []uint16, channels, frames, width, height int, md any) error {
	for _, g := range []string{"/Data/SpectrumStream", "/Data/SpectrumImage"} {
		if err := w.group(g); err != nil {
			return err
		}
	}
	g := "/Data/SpectrumStream/" + uuid()
	if err := w.group(g); err != nil {
		return err
	}
	n := uint64(len(events))
	ds, err := w.fw.CreateDataset(g+"/Data", hdf5.Uint16, []uint64{n, 1}, hdf5.WithChunkDims([]uint64{min(n, 8192), 1}))
	if err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	raw := make([]byte, 2*len(events))
	for i, v := range events {
		binary.LittleEndian.PutUint16(raw[2*i:], v)
	}
	if err := ds.WriteRaw(raw); err != nil {
		return fmt.Errorf("write stream: %w", err)
	}
	if err := w.metadata(g+"/Metadata", md, 1); err != nil {
		return err
	}
	if err := w.jsonString(g+"/AcquisitionSettings", map[string]any{
		"encoding": "uint16", "bincount": fmt.Sprint(channels), "StreamEncoding": "uint16", "Size": fmt.Sprint(width * height),
		"RasterScanDefinition": map[string]string{"Width": fmt.Sprint(width), "Height": fmt.Sprint(height)},
	}); err != nil {
		return err
	}
	si := "/Data/SpectrumImage/" + uuid()
	if err := w.group(si); err != nil {
		return err
	}
	// The proprietary compressed cube is not reproduced; a placeholder
	// marks the file as a spectrum image, as Velox files do.
	ph, err := w.fw.CreateDataset(si+"/Data", hdf5.Uint8, []uint64{1, 1})
	if err != nil {
		return err
	}
	if err := ph.WriteRaw([]byte{0}); err != nil {
		return err
	}
	if err := w.metadata(si+"/Metadata", md, 1); err != nil {
		return err
	}
	return w.jsonString(si+"/SpectrumImageSettings", map[string]string{"endFramePosition": fmt.Sprint(frames)})
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// veloxMetadata builds the per-dataset Velox JSON document.
func veloxMetadata(p Acquisition, detector string, pixel float64, w, h int, frameTime float64) map[string]any {
	s := func(v float64) string { return fmt.Sprint(v) }
	dets := map[string]any{
		"Detector-0": map[string]string{"DetectorName": "HAADF", "DetectorType": "ScanningDetector", "Inserted": "true", "Enabled": "true"},
		"Detector-1": map[string]string{
			"DetectorName": "SuperXG21", "DetectorType": "AnalyticalDetector", "Inserted": "true", "Enabled": "true",
			"Dispersion": s(p.Dispersion * 1000), "OffsetEnergy": s(p.EnergyOffset * 1000),
			"ElevationAngle": s(18 * math.Pi / 180), "AzimuthAngle": "0",
		},
	}
	return map[string]any{
		"Core": map[string]string{"MetadataDefinitionVersion": "7.9", "MetadataSchemaVersion": "v1/2013/07"},
		"Instrument": map[string]string{
			"Manufacturer": "FEI Company", "InstrumentClass": "Titan", "InstrumentModel": "PicoProbe (simulated)",
			"InstrumentId": "sim-0001", "ComputerName": "PICOPROBE-SIM", "ControlSoftwareVersion": "7.9",
		},
		"Acquisition": map[string]any{"AcquisitionStartDatetime": map[string]string{"DateTime": fmt.Sprint(p.Start.Unix())}},
		"Optics":      map[string]string{"AccelerationVoltage": s(p.BeamEnergy * 1000), "CameraLength": "0.1"},
		"Stage": map[string]any{
			"Position":  map[string]string{"x": "1.2e-05", "y": "-3.4e-05", "z": "5e-07"},
			"AlphaTilt": s(p.Tilt * math.Pi / 180), "BetaTilt": "0", "HolderType": "Double Tilt",
		},
		"Scan": map[string]any{
			"ScanSize":  map[string]string{"width": fmt.Sprint(w), "height": fmt.Sprint(h)},
			"DwellTime": s(p.Dwell), "FrameTime": s(frameTime),
		},
		"Detectors": dets,
		"BinaryResult": map[string]any{
			"Detector":   detector,
			"PixelSize":  map[string]string{"width": s(pixel), "height": s(pixel)},
			"PixelUnitX": "m", "PixelUnitY": "m",
			"Offset": map[string]string{"x": "0", "y": "0"},
		},
		"CustomProperties": map[string]any{
			"StemMagnification": map[string]string{"type": "double", "value": s(p.Magnification)},
		},
	}
}
