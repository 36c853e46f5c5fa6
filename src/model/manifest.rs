//! The manifest types and their JSON form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::graph::GraphSummary;

/// Memory layout of the image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// Order of the three colour channels in the tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// Element type of an image tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElementType {
    F32,
    F16,
    /// 8-bit pixels (TensorFlow converters' `uint8` images): always the range 0..255.
    U8,
}

impl ElementType {
    /// The ONNX name in lower case (`float32`, `float16`, `uint8`).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F16 => "float16",
            Self::U8 => "uint8",
        }
    }
}

/// Smallest tensor width and height a model's graph can run, in pixels. Smaller frames are
/// reflection-padded up to it (and `inference-scale` never shrinks a frame below it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinSize {
    pub width: usize,
    pub height: usize,
}

impl MinSize {
    /// No limit: one pixel.
    pub const ANY: Self = Self {
        width: 1,
        height: 1,
    };

    fn is_any(&self) -> bool {
        *self == Self::ANY
    }
}

impl Default for MinSize {
    fn default() -> Self {
        Self::ANY
    }
}

/// The value range pixel values are mapped to (0 ↦ low, 255 ↦ high).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueRange {
    /// [0, 255]: Johnson-style fast style networks.
    #[serde(rename = "0..255")]
    Byte,
    /// [0, 1].
    #[serde(rename = "0..1")]
    Unit,
    /// [-1, 1]: tanh generators such as CycleGAN and pix2pix.
    #[serde(rename = "-1..1")]
    Signed,
}

impl ValueRange {
    pub const ALL: [ValueRange; 3] = [Self::Byte, Self::Unit, Self::Signed];

    /// (value of pixel 0, value of pixel 255).
    pub fn bounds(self) -> (f32, f32) {
        match self {
            Self::Byte => (0.0, 255.0),
            Self::Unit => (0.0, 1.0),
            Self::Signed => (-1.0, 1.0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Byte => "0..255",
            Self::Unit => "0..1",
            Self::Signed => "-1..1",
        }
    }
}

impl fmt::Display for ValueRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ValueRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown value range '{s}': expected 0..255, 0..1 or -1..1"))
    }
}

/// How the model constrains the spatial size of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeRule {
    /// Any size whose width and height are multiples of N (frames are reflection-padded).
    Multiple(usize),
    /// Exactly this size (frames are resized).
    Fixed { width: usize, height: usize },
}

/// A conditioning input: a vector of `length` weights selecting or mixing styles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conditioning {
    pub input: String,
    pub length: usize,
    /// One label per entry (style names), possibly empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// Everything needed to feed a model frames and read frames back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub input: String,
    pub output: String,
    pub layout: Layout,
    /// Element type of the image input.
    pub element_type: ElementType,
    /// Element type of the image output (TensorFlow converters may return uint8 from float
    /// input or the other way round).
    pub output_element_type: ElementType,
    pub input_range: ValueRange,
    pub output_range: ValueRange,
    pub channel_order: ChannelOrder,
    pub size: SizeRule,
    /// Smallest input the graph can run ([`MinSize::ANY`] when it takes any size), found from
    /// the graph's reflection pads, kernels and strides (see [`super::spatial`]).
    #[serde(default, skip_serializing_if = "MinSize::is_any")]
    pub min_size: MinSize,
    /// The batch size the graph fixes (`None`: any). Batches are never larger, and smaller
    /// ones are padded to it.
    pub max_batch: Option<usize>,
    pub conditioning: Option<Conditioning>,
    /// Free-form description: style name, provenance, licence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A partial manifest: each field that is set replaces the manifest's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    /// Sets both `input_range` and `output_range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<ValueRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_range: Option<ValueRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_range: Option<ValueRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_order: Option<ChannelOrder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_multiple: Option<usize>,
    /// Smallest input the graph runs, `{"width": W, "height": H}` (default: found from the
    /// graph).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<MinSize>,
    /// Conditioning input name and style labels (its length comes from the graph).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditioning: Option<ConditioningPatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The conditioning part of a [`ManifestPatch`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditioningPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

impl ManifestPatch {
    /// Parses the JSON form, naming the offending field on error.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("manifest patches always serialize")
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Manifest {
    /// Applies every field `patch` sets.
    pub fn apply(&mut self, patch: &ManifestPatch) {
        if let Some(v) = &patch.input {
            self.input = v.clone();
        }
        if let Some(v) = &patch.output {
            self.output = v.clone();
        }
        if let Some(v) = patch.layout {
            self.layout = v;
        }
        if let Some(v) = patch.range {
            self.input_range = v;
            self.output_range = v;
        }
        if let Some(v) = patch.input_range {
            self.input_range = v;
        }
        if let Some(v) = patch.output_range {
            self.output_range = v;
        }
        if let Some(v) = patch.channel_order {
            self.channel_order = v;
        }
        if let (Some(m), SizeRule::Multiple(_)) = (patch.size_multiple, self.size) {
            self.size = SizeRule::Multiple(m.max(1));
        }
        if let Some(m) = patch.min_size {
            self.min_size = MinSize {
                width: m.width.max(1),
                height: m.height.max(1),
            };
        }
        if let Some(c) = &patch.conditioning {
            let current = self.conditioning.get_or_insert_with(|| Conditioning {
                input: String::new(),
                length: 0,
                labels: Vec::new(),
            });
            if let Some(input) = &c.input {
                current.input = input.clone();
            }
            if !c.labels.is_empty() {
                current.labels = c.labels.clone();
            }
        }
        if let Some(d) = &patch.description {
            self.description = Some(d.clone());
        }
    }

    /// Checks the manifest against the graph it describes.
    pub(crate) fn validate(&mut self, graph: &GraphSummary) -> Result<(), String> {
        for (side, ty, range) in [
            ("input", self.element_type, self.input_range),
            ("output", self.output_element_type, self.output_range),
        ] {
            if ty == ElementType::U8 && range != ValueRange::Byte {
                return Err(format!(
                    "the image {side} is uint8, which holds pixels as 0..255, not {range}"
                ));
            }
        }
        if !graph.inputs.iter().any(|t| t.name == self.input) {
            return Err(format!(
                "input '{}' is not an input of the graph",
                self.input
            ));
        }
        if !graph.outputs.iter().any(|t| t.name == self.output) {
            return Err(format!(
                "output '{}' is not an output of the graph",
                self.output
            ));
        }
        if let Some(c) = &mut self.conditioning {
            let info = graph
                .inputs
                .iter()
                .find(|t| t.name == c.input)
                .ok_or_else(|| {
                    format!(
                        "conditioning input '{}' is not an input of the graph",
                        c.input
                    )
                })?;
            if c.length == 0 {
                c.length = info.dims.last().copied().flatten().unwrap_or(0) as usize;
            }
            if c.length == 0 {
                return Err(format!(
                    "conditioning input '{}' has no fixed length",
                    c.input
                ));
            }
            if !c.labels.is_empty() && c.labels.len() != c.length {
                return Err(format!(
                    "conditioning input '{}' has {} entries but {} labels are given",
                    c.input,
                    c.length,
                    c.labels.len()
                ));
            }
        }
        Ok(())
    }

    /// The number of styles a conditioned model offers (1 for unconditioned models).
    pub fn style_count(&self) -> usize {
        self.conditioning.as_ref().map_or(1, |c| c.length)
    }

    /// The image output's name when its height and width are always even, as every tensor
    /// the element feeds the model is (some graph rewrites need it).
    pub fn even_sized_output(&self) -> Option<&str> {
        let even = match self.size {
            SizeRule::Multiple(n) => n % 2 == 0,
            SizeRule::Fixed { width, height } => width % 2 == 0 && height % 2 == 0,
        };
        even.then_some(self.output.as_str())
    }

    /// A human-readable multi-line summary.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let size = match self.size {
            SizeRule::Multiple(1) => "any".to_string(),
            SizeRule::Multiple(m) => format!("any multiple of {m} (frames are reflection-padded)"),
            SizeRule::Fixed { width, height } => {
                format!("fixed {width}x{height} (frames are resized)")
            }
        };
        let batch = match self.max_batch {
            None => "any".to_string(),
            Some(1) => "1 (fixed by the graph)".to_string(),
            Some(b) => format!("fixed {b} (smaller batches are padded to {b} frames)"),
        };
        let layout = match self.layout {
            Layout::Nchw => "NCHW",
            Layout::Nhwc => "NHWC",
        };
        let order = match self.channel_order {
            ChannelOrder::Rgb => "RGB",
            ChannelOrder::Bgr => "BGR",
        };
        s += &format!(
            "input:         {} ({layout}, {}, {order}, range {})\n",
            self.input,
            self.element_type.name(),
            self.input_range
        );
        s += &format!(
            "output:        {} ({layout}, {}, {order}, range {})\n",
            self.output,
            self.output_element_type.name(),
            self.output_range
        );
        s += &format!("size:          {size}\n");
        if let SizeRule::Multiple(_) = self.size {
            let MinSize { width, height } = self.min_size;
            s += &if self.min_size.is_any() {
                "min size:      1x1\n".to_string()
            } else {
                format!("min size:      {width}x{height} (smaller frames are reflection-padded)\n")
            };
        }
        s += &format!("batch:         {batch}\n");
        match &self.conditioning {
            None => s += "conditioning:  none\n",
            Some(c) => {
                s += &format!("conditioning:  {} ({} styles)\n", c.input, c.length);
                for (i, l) in c.labels.iter().enumerate() {
                    s += &format!("  style {i}: {l}\n");
                }
            }
        }
        if let Some(d) = &self.description {
            s += &format!("description:   {d}\n");
        }
        s
    }
}
