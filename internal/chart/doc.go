// Package chart renders the analysis figures as PNG: calibrated intensity
// maps with a colour bar, and EDS spectra on a log scale with line markers.
// It depends on gonum/plot only; it knows nothing about EMD files.
package chart
