// Package picoflow is the code map of the picoflow module. It holds no code.
//
//	cmd/picoflow                  the binary: analyze, simulate, bench
//	internal/emd                  EMD (HDF5) read access: Velox and NCEM, SpectrumStream decoding
//	internal/emd/emdtest          real test files (../shared/data) and the HyperSpy reference
//	internal/record               the DataCite-based catalogue record of a file
//	internal/analysis             picks and runs the analysis for a file, writes record.json
//	internal/analysis/hyperspectral  summed map and spectrum, element identification, element maps
//	internal/xray                 characteristic X-ray line table (generated from HyperSpy)
//	internal/chart                PNG figures: calibrated maps with colour bar, log spectra
//	internal/simulate             synthetic Velox EMD files with ground truth
package picoflow
