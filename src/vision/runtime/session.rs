//! One compiled model behind one interface, whichever backend compiled it.
//!
//! The detector and the embedder write an input, run, and read outputs in the model file's
//! order; they do not know whether LiteRT or the classic interpreter runs underneath. The buffers
//! are made once, here, so that a frame allocates nothing.

use std::time::Duration;

use super::classic::ClassicSession;
use super::litert::LiteRtSession;
use super::Api;
use crate::vision::model::ModelInfo;
use crate::vision::VisionError;

pub(super) enum Backend {
    LiteRt(LiteRtSession),
    Classic(ClassicSession),
}

/// One compiled model with reusable host buffers: write [`Session::input_mut`], call
/// [`Session::run`], read [`Session::output`]. After construction nothing here allocates.
pub struct Session {
    backend: Backend,
    input: Vec<u8>,
    /// In the model file's output order (`info.outputs`).
    outputs: Vec<Vec<u8>>,
    /// Backend output `i` lands in `outputs[out_map[i]]`.
    out_map: Vec<usize>,
    info: ModelInfo,
    /// How long the last [`Session::run`] spent in the runtime's invoke call alone.
    last_invoke: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let api = match self.backend {
            Backend::LiteRt(_) => Api::LiteRt,
            Backend::Classic(_) => Api::Classic,
        };
        f.debug_struct("Session")
            .field("api", &api)
            .field("model", &self.info.describe())
            .finish()
    }
}

impl Session {
    /// Buffers for the tensors `info` declares, and the backend's outputs matched to them.
    pub(super) fn new(backend: Backend, info: ModelInfo) -> Result<Session, VisionError> {
        let input = vec![0u8; info.inputs[0].byte_size()];
        let outputs = info
            .outputs
            .iter()
            .map(|t| vec![0u8; t.byte_size()])
            .collect();
        let mut session = Session {
            backend,
            input,
            outputs,
            out_map: Vec::new(),
            info,
            last_invoke: Duration::ZERO,
        };
        session.out_map = session.match_outputs()?;
        Ok(session)
    }

    /// The raw bytes of input 0, to be filled before [`Session::run`].
    pub fn input_mut(&mut self) -> &mut [u8] {
        &mut self.input
    }

    /// The raw bytes of output `index` (model file order) after [`Session::run`].
    pub fn output(&self, index: usize) -> &[u8] {
        &self.outputs[index]
    }

    /// Time the last [`Session::run`] spent inside the runtime's invoke call (the network
    /// itself), without copying the input in and the outputs out.
    pub fn last_invoke(&self) -> Duration {
        self.last_invoke
    }

    /// Run the model on the current input.
    pub fn run(&mut self) -> Result<(), VisionError> {
        let (input, outputs, map) = (&self.input, &mut self.outputs, &self.out_map);
        self.last_invoke = match &mut self.backend {
            Backend::LiteRt(s) => s.run(input, outputs, map)?,
            Backend::Classic(s) => s.run(input, outputs, map)?,
        };
        Ok(())
    }

    /// LiteRT orders outputs by signature (alphabetically by name), not as the subgraph lists
    /// them; match each runtime output to the file's by size, which differs for our models.
    fn match_outputs(&self) -> Result<Vec<usize>, VisionError> {
        let sizes = match &self.backend {
            Backend::LiteRt(s) => s.output_sizes(),
            Backend::Classic(s) => return Ok((0..s.output_count()).collect()),
        };
        let mut taken = vec![false; self.info.outputs.len()];
        let mut map = Vec::with_capacity(sizes.len());
        for size in sizes {
            let found = (0..taken.len())
                .find(|&j| !taken[j] && self.info.outputs[j].byte_size() == size)
                .ok_or_else(|| VisionError::Runtime {
                    context: "output matching",
                    message: format!(
                        "runtime output of {size} bytes matches no output of the model file ({})",
                        self.info.describe()
                    ),
                })?;
            taken[found] = true;
            map.push(found);
        }
        Ok(map)
    }
}
