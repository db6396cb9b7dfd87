//! The browser API (wasm only): a classifier on WebGPU, or on the CPU when WebGPU is missing.

use burn::tensor::Device;
use wasm_bindgen::prelude::*;

use crate::{ImageClassifier, ModelCard};

/// A [`ImageClassifier`] for JavaScript.
#[wasm_bindgen]
pub struct WebClassifier {
    inner: ImageClassifier,
    backend: String,
}

#[wasm_bindgen]
impl WebClassifier {
    /// Loads the burnpack `model` described by `card` (the text of `model.json`).
    ///
    /// `backend` is `"webgpu"` (Burn's wgpu backend on `navigator.gpu`; fails if no adapter
    /// can be had), `"cpu"` (Burn's flex backend in wasm) or `"auto"` (WebGPU if it
    /// initialises, else the CPU).
    pub async fn create(
        model: Vec<u8>,
        card: String,
        backend: String,
    ) -> Result<WebClassifier, JsError> {
        let card: ModelCard =
            serde_json::from_str(&card).map_err(|e| JsError::new(&format!("model.json: {e}")))?;
        let (device, backend) = match backend.as_str() {
            "cpu" => (Device::flex(), "cpu (flex, wasm)".to_string()),
            "webgpu" => (webgpu().await?, "webgpu (wgpu)".to_string()),
            "auto" => match webgpu().await {
                Ok(device) => (device, "webgpu (wgpu)".to_string()),
                Err(_) => (Device::flex(), "cpu (flex, wasm)".to_string()),
            },
            other => {
                return Err(JsError::new(&format!(
                    "unknown backend `{other}`: expected webgpu, cpu or auto"
                )));
            }
        };
        let inner =
            ImageClassifier::new(card, model, &device).map_err(|e| JsError::new(&e.to_string()))?;
        Ok(Self { inner, backend })
    }

    /// The backend inference runs on, e.g. `"webgpu (wgpu)"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    /// The model card as JSON.
    #[wasm_bindgen(getter)]
    pub fn card(&self) -> String {
        serde_json::to_string(self.inner.card()).expect("a card serialises")
    }

    /// The `k` most probable classes of an RGBA image of the model's input size, as JSON:
    /// `[{"index": 3, "class": "cat", "probability": 0.71}, …]`.
    pub async fn classify(
        &self,
        rgba: Vec<u8>,
        width: usize,
        height: usize,
        k: usize,
    ) -> Result<String, JsError> {
        let input = self
            .inner
            .input(&rgba, width, height)
            .map_err(|e| JsError::new(&e.to_string()))?;
        let data = self
            .inner
            .probabilities(input)
            .into_data_async()
            .await
            .map_err(|e| JsError::new(&format!("reading the result: {e:?}")))?;
        let top = self
            .inner
            .top_k(data, k)
            .map_err(|e| JsError::new(&e.to_string()))?;
        Ok(serde_json::to_string(&top).expect("scores serialise"))
    }
}

async fn webgpu() -> Result<Device, JsError> {
    Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| JsError::new(&format!("WebGPU is not available: {e}")))
}
