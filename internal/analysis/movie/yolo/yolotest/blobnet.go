// Package yolotest builds small ONNX detectors with YOLOv8's exact input
// and output (images 1×3×640×640 → output0 1×5×8400), so the ONNX Runtime
// path is tested with a real model and the real runtime, without model
// files in the repository. The ONNX protobuf is written by hand with
// protowire.
package yolotest

import (
	"encoding/binary"
	"math"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// ONNX enums used here.
const (
	tFloat = 1
	tInt64 = 7
	aFloat = 1
	aInt   = 2
	aInts  = 7
)

type msg []byte

func (m msg) str(field protowire.Number, s string) msg {
	m = protowire.AppendTag(m, field, protowire.BytesType)
	return protowire.AppendString(m, s)
}
func (m msg) bytes(field protowire.Number, b []byte) msg {
	m = protowire.AppendTag(m, field, protowire.BytesType)
	return protowire.AppendBytes(m, b)
}
func (m msg) varint(field protowire.Number, v int64) msg {
	m = protowire.AppendTag(m, field, protowire.VarintType)
	return protowire.AppendVarint(m, uint64(v))
}
func (m msg) fixed32(field protowire.Number, v uint32) msg {
	m = protowire.AppendTag(m, field, protowire.Fixed32Type)
	return protowire.AppendFixed32(m, v)
}

// tensor is a TensorProto with raw data.
func tensor(name string, dtype int64, dims []int64, raw []byte) msg {
	var t msg
	for _, d := range dims {
		t = t.varint(1, d)
	}
	t = t.varint(2, dtype)
	t = t.str(8, name)
	return t.bytes(9, raw)
}

func floats(name string, dims []int64, v []float32) msg {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	return tensor(name, tFloat, dims, raw)
}

func int64s(name string, v []int64) msg {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	return tensor(name, tInt64, []int64{int64(len(v))}, raw)
}

type attr struct {
	name string
	f    *float32
	i    *int64
	ints []int64
}

func ints(name string, v ...int64) attr { return attr{name: name, ints: v} }
func intAttr(name string, v int64) attr { return attr{name: name, i: &v} }

func node(op string, in, out []string, attrs ...attr) msg {
	var n msg
	for _, s := range in {
		n = n.str(1, s)
	}
	for _, s := range out {
		n = n.str(2, s)
	}
	n = n.str(3, out[0]+"_"+op)
	n = n.str(4, op)
	for _, a := range attrs {
		var am msg
		am = am.str(1, a.name)
		switch {
		case a.f != nil:
			am = am.fixed32(2, math.Float32bits(*a.f)).varint(20, aFloat)
		case a.i != nil:
			am = am.varint(3, *a.i).varint(20, aInt)
		default:
			for _, v := range a.ints {
				am = am.varint(8, v)
			}
			am = am.varint(20, aInts)
		}
		n = n.bytes(5, am)
	}
	return n
}

func valueInfo(name string, dims ...int64) msg {
	var shape msg
	for _, d := range dims {
		shape = shape.bytes(1, msg(nil).varint(1, d))
	}
	tt := msg(nil).varint(1, tFloat).bytes(2, shape)
	typ := msg(nil).bytes(1, tt)
	return msg(nil).str(1, name).bytes(2, typ)
}

// BlobNet writes a detector of bright blobs with YOLOv8's I/O to path:
// grey = mean of the channels; 8×8 average pooling (the stride-8 level of
// 80×80 cells); a cell scores (mean − 0.45)·2, clipped to [0, 1], where it
// is a 3×3 local maximum, else 0; its box is a fixed 64×64 pixels at the
// cell centre. The stride-16 and stride-32 levels score 0.
func BlobNet(path string) error {
	const cells = 80 * 80
	var g msg
	nodes := []msg{
		node("ReduceMean", []string{"images"}, []string{"grey"}, ints("axes", 1), intAttr("keepdims", 1)),
		node("AveragePool", []string{"grey"}, []string{"pooled"}, ints("kernel_shape", 8, 8), ints("strides", 8, 8)),
		node("MaxPool", []string{"pooled"}, []string{"local"}, ints("kernel_shape", 3, 3), ints("strides", 1, 1), ints("pads", 1, 1, 1, 1)),
		node("Equal", []string{"pooled", "local"}, []string{"is_max_b"}),
		node("Cast", []string{"is_max_b"}, []string{"is_max"}, intAttr("to", tFloat)),
		node("Sub", []string{"pooled", "level"}, []string{"above"}),
		node("Relu", []string{"above"}, []string{"pos"}),
		node("Mul", []string{"pos", "two"}, []string{"scaled"}),
		node("Min", []string{"scaled", "one"}, []string{"clipped"}),
		node("Mul", []string{"clipped", "is_max"}, []string{"score2d"}),
		node("Reshape", []string{"score2d", "score_shape"}, []string{"score"}),
		node("Concat", []string{"cx", "cy", "wh", "wh", "score"}, []string{"level8"}, intAttr("axis", 1)),
		node("Concat", []string{"level8", "coarse"}, []string{"output0"}, intAttr("axis", 2)),
	}
	for _, n := range nodes {
		g = g.bytes(1, n)
	}
	g = g.str(2, "blobnet")
	cx, cy, wh := make([]float32, cells), make([]float32, cells), make([]float32, cells)
	for r := range 80 {
		for c := range 80 {
			cx[r*80+c], cy[r*80+c], wh[r*80+c] = float32(c)*8+4, float32(r)*8+4, 64
		}
	}
	inits := []msg{
		floats("level", []int64{1}, []float32{0.45}),
		floats("two", []int64{1}, []float32{2}),
		floats("one", []int64{1}, []float32{1}),
		int64s("score_shape", []int64{1, 1, cells}),
		floats("cx", []int64{1, 1, cells}, cx),
		floats("cy", []int64{1, 1, cells}, cy),
		floats("wh", []int64{1, 1, cells}, wh),
		floats("coarse", []int64{1, 5, 8400 - cells}, make([]float32, 5*(8400-cells))),
	}
	for _, t := range inits {
		g = g.bytes(5, t)
	}
	g = g.bytes(11, valueInfo("images", 1, 3, 640, 640))
	g = g.bytes(12, valueInfo("output0", 1, 5, 8400))
	var m msg
	m = m.varint(1, 8) // IR version 8
	m = m.str(2, "picoflow-yolotest")
	m = m.bytes(7, g)
	m = m.bytes(8, msg(nil).str(1, "").varint(2, 13))
	// Ultralytics metadata: class names.
	m = m.bytes(14, msg(nil).str(1, "names").str(2, "{0: 'nanoparticle'}"))
	return os.WriteFile(path, m, 0o644)
}
