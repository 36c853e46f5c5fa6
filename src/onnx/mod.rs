//! Writing ONNX models: a small graph builder over the `onnx-protobuf` message types.
//!
//! Tests use it to build models whose output is known exactly; the trainer's exporter uses it
//! to write trained networks. [`rewrite`] speeds up a loaded model's graph.

pub mod quantize;
pub mod rewrite;

use std::path::Path;

use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto, type_proto,
};

/// ONNX opset the builder declares.
pub const OPSET: i64 = 17;
/// ONNX IR version the builder writes.
pub const IR_VERSION: i64 = 8;

/// A tensor dimension: fixed, or named and left to run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    Fixed(i64),
    Named(String),
}

impl From<i64> for Dim {
    fn from(v: i64) -> Self {
        Dim::Fixed(v)
    }
}

impl From<&str> for Dim {
    fn from(v: &str) -> Self {
        Dim::Named(v.to_string())
    }
}

/// Element types the builder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    F16,
    I64,
    U8,
}

impl Elem {
    fn data_type(self) -> DataType {
        match self {
            Elem::F32 => DataType::FLOAT,
            Elem::F16 => DataType::FLOAT16,
            Elem::I64 => DataType::INT64,
            Elem::U8 => DataType::UINT8,
        }
    }
}

/// A node attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
    Float(&'static str, f32),
    Str(&'static str, String),
}

impl Attr {
    fn to_proto(&self) -> AttributeProto {
        let mut a = AttributeProto::new();
        match self {
            Attr::Int(n, v) => {
                a.name = n.to_string();
                a.type_ = AttributeType::INT.into();
                a.i = *v;
            }
            Attr::Ints(n, v) => {
                a.name = n.to_string();
                a.type_ = AttributeType::INTS.into();
                a.ints = v.clone();
            }
            Attr::Float(n, v) => {
                a.name = n.to_string();
                a.type_ = AttributeType::FLOAT.into();
                a.f = *v;
            }
            Attr::Str(n, v) => {
                a.name = n.to_string();
                a.type_ = AttributeType::STRING.into();
                a.s = v.as_bytes().to_vec();
            }
        }
        a
    }
}

/// `data` as the little-endian bytes of FLOAT16 (rounded) or else FLOAT values.
fn float_bytes(data_type: DataType, data: &[f32]) -> Vec<u8> {
    if data_type == DataType::FLOAT16 {
        data.iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect()
    } else {
        data.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

/// A node `name` running `op`.
fn node_proto(
    name: &str,
    op: &str,
    inputs: &[impl AsRef<str>],
    outputs: &[impl AsRef<str>],
    attrs: &[Attr],
) -> NodeProto {
    let mut n = NodeProto::new();
    n.name = name.to_string();
    n.op_type = op.to_string();
    n.input = inputs.iter().map(|s| s.as_ref().to_string()).collect();
    n.output = outputs.iter().map(|s| s.as_ref().to_string()).collect();
    n.attribute = attrs.iter().map(Attr::to_proto).collect();
    n
}

/// A constant tensor stored little-endian in `raw`.
/// An initializer `name` of `dims` whose little-endian values are `raw`.
pub(crate) fn tensor_proto(
    name: &str,
    data_type: DataType,
    dims: &[i64],
    raw: Vec<u8>,
) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.data_type = data_type as i32;
    t.dims = dims.to_vec();
    t.raw_data = raw;
    t
}

/// Builds one ONNX model.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    graph: GraphProto,
    metadata: Vec<(String, String)>,
    counter: usize,
    /// Prepended to generated node and tensor names.
    prefix: String,
}

fn value_info(name: &str, elem: Elem, dims: &[Dim]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = tensor_shape_proto::Dimension::new();
        match d {
            Dim::Fixed(v) => dim.set_dim_value(*v),
            Dim::Named(s) => dim.set_dim_param(s.clone()),
        }
        shape.dim.push(dim);
    }
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = elem.data_type() as i32;
    tensor.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.set_tensor_type(tensor);
    let mut v = ValueInfoProto::new();
    v.name = name.to_string();
    v.type_ = Some(ty).into();
    v
}

impl GraphBuilder {
    pub fn new(name: &str) -> Self {
        let mut b = Self::default();
        b.graph.name = name.to_string();
        b
    }

    /// A builder whose generated node and tensor names start with `prefix`, for graphs that
    /// are merged into another.
    pub fn with_prefix(name: &str, prefix: &str) -> Self {
        let mut b = Self::new(name);
        b.prefix = prefix.to_string();
        b
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, elem: Elem, dims: &[Dim]) -> String {
        self.graph.input.push(value_info(name, elem, dims));
        name.to_string()
    }

    /// Declares a graph output.
    pub fn output(&mut self, name: &str, elem: Elem, dims: &[Dim]) {
        self.graph.output.push(value_info(name, elem, dims));
    }

    /// Adds a float32 constant and returns its name.
    pub fn constant_f32(&mut self, name: &str, dims: &[i64], data: &[f32]) -> String {
        let raw = float_bytes(DataType::FLOAT, data);
        self.initializer(name, DataType::FLOAT, dims, data.len(), raw)
    }

    /// Adds a float16 constant (converted from `data`) and returns its name.
    pub fn constant_f16(&mut self, name: &str, dims: &[i64], data: &[f32]) -> String {
        let raw = float_bytes(DataType::FLOAT16, data);
        self.initializer(name, DataType::FLOAT16, dims, data.len(), raw)
    }

    /// Adds an int64 constant and returns its name.
    pub fn constant_i64(&mut self, name: &str, dims: &[i64], data: &[i64]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.initializer(name, DataType::INT64, dims, data.len(), raw)
    }

    /// Adds an initializer of `len` elements stored little-endian in `raw`.
    fn initializer(
        &mut self,
        name: &str,
        data_type: DataType,
        dims: &[i64],
        len: usize,
        raw: Vec<u8>,
    ) -> String {
        assert_eq!(
            dims.iter().product::<i64>() as usize,
            len,
            "constant '{name}' size"
        );
        self.graph
            .initializer
            .push(tensor_proto(name, data_type, dims, raw));
        name.to_string()
    }

    /// Adds a node writing to `outputs`.
    pub fn node(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attrs: &[Attr]) {
        self.counter += 1;
        let name = format!("{}{op}_{}", self.prefix, self.counter);
        let n = node_proto(&name, op, inputs, outputs, attrs);
        self.graph.node.push(n);
    }

    /// Adds a single-output node with a generated output name, which it returns.
    pub fn op(&mut self, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        let out = format!(
            "{}{}_{}_out",
            self.prefix,
            op.to_lowercase(),
            self.counter + 1
        );
        self.node(op, inputs, &[&out], attrs);
        out
    }

    /// Stores a key/value pair in the model's `metadata_props`.
    pub fn metadata(&mut self, key: &str, value: &str) {
        self.metadata.push((key.to_string(), value.to_string()));
    }

    /// The finished model.
    pub fn build(self) -> ModelProto {
        let mut m = ModelProto::new();
        m.ir_version = IR_VERSION;
        m.producer_name = "rsstyle".to_string();
        m.producer_version = env!("CARGO_PKG_VERSION").to_string();
        let mut opset = OperatorSetIdProto::new();
        opset.version = OPSET;
        m.opset_import.push(opset);
        m.metadata_props = self
            .metadata
            .into_iter()
            .map(|(k, v)| {
                let mut e = StringStringEntryProto::new();
                e.key = k;
                e.value = v;
                e
            })
            .collect();
        m.graph = Some(self.graph).into();
        m
    }

    /// The finished model as ONNX bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        self.build()
            .write_to_bytes()
            .expect("an in-memory ONNX model always encodes")
    }

    /// Writes the finished model to `path`.
    pub fn write(self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_bytes())
    }
}
