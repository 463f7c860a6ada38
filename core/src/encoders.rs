//! Encoders and losses chosen by name in the experiment file: the built-in ones registered
//! below, or `<plugin-id>/<component>` from an installed plugin (native: tensor interface;
//! WASM: served by `astroclip-wasm-host`).
//!
//! ```toml
//! [image.encoder]              # the settings table is the encoder's own type
//! name = "resnet"              # or "tensor-zoo/cnn", "wasm-mlp-encoder/encoder"
//! channels = [16, 32, 64]      # astroclip_builtin::resnet::ResNetSettings
//! ```
//!
//! [`Encoder`] and [`Loss`] are burn modules whose variants are *transparent*: a parameter's
//! path is the variant's own (`image.stem.weight`), not `image.ResNet.stem.weight` as burn's
//! derive would make it, so checkpoints written before the choice existed still load and a
//! checkpoint of one encoder refuses to load into another with burn's missing/unused-tensor
//! error.
//!
//! **Adding a built-in encoder** is one file in `plugins/builtin/src/` (the module, its
//! `Settings` type and its [`ConfiguredEncoder`] impl) plus one line in [`encoders!`] below
//! (and the file's `pub mod` line in that crate's `lib.rs`). See docs/architecture.md.

use std::path::Path;

use astroclip_plugin_api::{
    ComponentInfo, ConfiguredEncoder, ContrastiveLoss, EncoderInput, ModalityEncoder, SettingError,
};
use astroclip_plugin_host::{Carrier, Installed};
use burn::module::{Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::plugin_encoder::{PluginEncoder, PluginLoss};

/// `[<modality>.encoder]`: the encoder's name and its settings (checked against the
/// encoder's own settings type when the configuration is loaded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderChoice {
    pub name: String,
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

impl EncoderChoice {
    /// A built-in encoder with its settings.
    pub fn builtin<E: ConfiguredEncoder>(settings: &E::Settings) -> Self {
        let settings = match serde_json::to_value(settings) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        Self { name: E::NAME.to_string(), settings }
    }

    /// The typed settings when this is the built-in encoder `E`.
    pub fn settings_of<E: ConfiguredEncoder>(&self) -> Option<E::Settings> {
        (self.name == E::NAME).then(|| parse::<E>(&self.settings).ok()).flatten()
    }

    /// `(plugin id, component)` when the name is a plugin's.
    pub fn plugin(&self) -> Option<(&str, &str)> {
        self.name.rsplit_once('/')
    }
}

/// A problem with an encoder or loss choice, naming the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for `{key}`: {message}")]
pub struct ChoiceError {
    pub key: String,
    pub message: String,
}

fn choice_error(key: &str, message: impl Into<String>) -> ChoiceError {
    ChoiceError { key: key.to_string(), message: message.into() }
}

/// Forwards every `Module` method to the variant without entering a module scope for it.
macro_rules! transparent_module {
    ($name:ident { $($variant:ident),* }) => {
        impl Module for $name {
            fn collect_devices(&self, devices: Devices) -> Devices {
                match self { $(Self::$variant(m) => m.collect_devices(devices),)* }
            }
            fn fork(self, device: &Device) -> Self {
                match self { $(Self::$variant(m) => Self::$variant(m.fork(device)),)* }
            }
            fn to_device(self, device: &Device) -> Self {
                match self { $(Self::$variant(m) => Self::$variant(m.to_device(device)),)* }
            }
            fn train(self) -> Self {
                match self { $(Self::$variant(m) => Self::$variant(m.train()),)* }
            }
            fn valid(&self) -> Self {
                match self { $(Self::$variant(m) => Self::$variant(m.valid()),)* }
            }
            fn materialize(self) -> Self {
                match self { $(Self::$variant(m) => Self::$variant(m.materialize()),)* }
            }
            fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
                match self { $(Self::$variant(m) => m.visit(visitor),)* }
            }
            fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
                match self { $(Self::$variant(m) => Self::$variant(m.map(mapper)),)* }
            }
        }
        impl ModuleDisplayDefault for $name {
            fn content(&self, content: Content) -> Option<Content> {
                match self { $(Self::$variant(m) => m.content(content),)* }
            }
            fn num_params(&self) -> usize {
                Module::num_params(self)
            }
        }
        impl ModuleDisplay for $name {}
        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self { $(Self::$variant(m) => write!(f, "{}", m.format(Default::default())),)* }
            }
        }
    };
}

/// The built-in encoders: `Variant(type)`, one line each.
macro_rules! encoders {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// A modality encoder: a built-in one or a plugin's.
        #[derive(Debug, Clone)]
        pub enum Encoder {
            $($variant($ty),)*
            Plugin(PluginEncoder),
        }

        transparent_module!(Encoder { $($variant,)* Plugin });

        impl ModalityEncoder for Encoder {
            fn info(&self) -> ComponentInfo {
                match self { $(Self::$variant(m) => m.info(),)* Self::Plugin(m) => m.info() }
            }
            fn embed_dim(&self) -> usize {
                match self { $(Self::$variant(m) => m.embed_dim(),)* Self::Plugin(m) => m.embed_dim() }
            }
            fn encode(&self, input: Tensor<2>) -> Tensor<2> {
                match self { $(Self::$variant(m) => m.encode(input),)* Self::Plugin(m) => m.encode(input) }
            }
        }

        /// `(name, modality)` of every built-in encoder.
        pub const BUILTIN_ENCODERS: &[(&str, &str)] =
            &[$((<$ty as ConfiguredEncoder>::NAME, <$ty as ConfiguredEncoder>::MODALITY)),*];

        fn canonical_builtin(name: &str, settings: &Map<String, Value>, embed_dim: usize)
            -> Option<Result<Map<String, Value>, SettingError>> {
            $(if name == <$ty as ConfiguredEncoder>::NAME {
                return Some(canonical::<$ty>(settings, embed_dim));
            })*
            None
        }

        fn build_builtin(name: &str, settings: &Map<String, Value>, input: &EncoderInput, device: &Device)
            -> Option<Result<Encoder, SettingError>> {
            $(if name == <$ty as ConfiguredEncoder>::NAME {
                return Some(parse::<$ty>(settings)
                    .and_then(|s| <$ty as ConfiguredEncoder>::build(&s, input, device))
                    .map(Encoder::$variant));
            })*
            None
        }

        impl Encoder {
            /// The same encoder with only its head trainable; `None` when it has no
            /// backbone/head split (plugin encoders).
            pub fn freeze_backbone(self) -> Option<Self> {
                match self {
                    $(Self::$variant(m) => ConfiguredEncoder::freeze_backbone(m).map(Self::$variant),)*
                    Self::Plugin(_) => None,
                }
            }
        }
    };
}

encoders! {
    ResNet(astroclip_builtin::resnet::ResNetEncoder),
    Vit(astroclip_builtin::vit::VitEncoder),
    SpecFormer(astroclip_builtin::specformer::SpecFormer),
}

impl Encoder {
    /// The SpecFormer inside, for objectives that need its tokens (masked modelling).
    pub fn into_specformer(self) -> Result<astroclip_builtin::specformer::SpecFormer, ComponentInfo> {
        match self {
            Self::SpecFormer(s) => Ok(s),
            other => Err(other.info()),
        }
    }
}

fn parse<E: ConfiguredEncoder>(settings: &Map<String, Value>) -> Result<E::Settings, SettingError> {
    // TOML has no null: a null here is a NaN or an infinity (`--set image.encoder.dropout=nan`),
    // which JSON cannot hold. Named here, before serde would blame the whole table.
    fn non_finite(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Array(a) => a.iter().any(non_finite),
            Value::Object(m) => m.values().any(non_finite),
            _ => false,
        }
    }
    if let Some((key, _)) = settings.iter().find(|(_, v)| non_finite(v)) {
        return Err(SettingError::new(key.clone(), "must be a finite number (nan and inf are not)"));
    }
    serde_json::from_value(Value::Object(settings.clone())).map_err(|e| {
        // serde names the unknown or mistyped field in its message.
        let msg = e.to_string();
        let key = msg.split('`').nth(1).filter(|_| msg.starts_with("unknown field")).unwrap_or("").to_string();
        SettingError::new(key, msg)
    })
}

fn canonical<E: ConfiguredEncoder>(
    settings: &Map<String, Value>,
    embed_dim: usize,
) -> Result<Map<String, Value>, SettingError> {
    let s = parse::<E>(settings)?;
    E::check(&s, embed_dim)?;
    match serde_json::to_value(&s) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(SettingError::new("", "settings do not serialise to a table")),
    }
}

/// Checks the choice for `modality` (config key `key`, e.g. `image.encoder`) and replaces its
/// settings by the encoder's complete settings (every default filled in), so that the stored
/// configuration says exactly what was built.
pub fn resolve_choice(
    key: &str,
    modality: &str,
    choice: &mut EncoderChoice,
    embed_dim: usize,
) -> Result<(), ChoiceError> {
    if let Some((id, component)) = choice.plugin() {
        if id.is_empty() || component.is_empty() {
            return Err(choice_error(
                &format!("{key}.name"),
                format!("{:?} is not of the form <plugin-id>/<encoder>", choice.name),
            ));
        }
        if let Some(k) = choice.settings.keys().next() {
            return Err(choice_error(
                &format!("{key}.{k}"),
                "a plugin encoder takes no settings from the experiment file (its program declares its \
                 parameters); remove the key",
            ));
        }
        return Ok(());
    }
    match BUILTIN_ENCODERS.iter().find(|(n, _)| *n == choice.name) {
        None => Err(choice_error(
            &format!("{key}.name"),
            format!("unknown encoder {:?}; available: {}", choice.name, available(modality)),
        )),
        Some((_, m)) if *m != modality => Err(choice_error(
            &format!("{key}.name"),
            format!("{:?} is a {m} encoder; available for {modality}: {}", choice.name, available(modality)),
        )),
        Some(_) => {
            let canonical = canonical_builtin(&choice.name, &choice.settings, embed_dim)
                .unwrap_or_else(|| Err(SettingError::new("name", "not registered")))
                .map_err(|e| {
                    let k = if e.key.is_empty() { key.to_string() } else { format!("{key}.{}", e.key) };
                    choice_error(&k, format!("{} encoder: {}", choice.name, e.message))
                })?;
            choice.settings = canonical;
            Ok(())
        }
    }
}

fn available(modality: &str) -> String {
    let mut names: Vec<&str> = BUILTIN_ENCODERS.iter().filter(|(_, m)| *m == modality).map(|(n, _)| *n).collect();
    names.push("<plugin-id>/<encoder> of an installed plugin (`astroclip plugins list`)");
    names.join(", ")
}

/// Where a plugin component came from, for the run's params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginProvenance {
    pub id: String,
    pub version: String,
    pub sha256: String,
}

/// Builds the encoder `choice` (already resolved) for `input` on `device`; plugin encoders are
/// looked up among the plugins installed under `home`. Returns the plugin's identity for a
/// plugin encoder.
pub fn build_encoder(
    key: &str,
    choice: &EncoderChoice,
    input: &EncoderInput,
    home: &Path,
    device: &Device,
) -> Result<(Encoder, Option<PluginProvenance>), ChoiceError> {
    let Some((id, component)) = choice.plugin() else {
        let built = build_builtin(&choice.name, &choice.settings, input, device)
            .unwrap_or_else(|| Err(SettingError::new("name", format!("unknown encoder {:?}", choice.name))))
            .map_err(|e| choice_error(&format!("{key}.{}", e.key), e.message))?;
        return Ok((built, None));
    };
    let name_key = format!("{key}.name");
    let dir = Installed::new(home).resolve(id).map_err(|e| choice_error(&name_key, e.to_string()))?;
    let provenance = PluginProvenance {
        id: dir.id().to_string(),
        version: dir.version().to_string(),
        sha256: dir.manifest.entry.sha256.clone(),
    };
    let input_len: usize = input.shape.iter().product();
    let encoder = match dir.manifest.entry.carrier {
        Carrier::Native => {
            let plugin =
                astroclip_plugin_host::native::NativePlugin::load(&dir).map_err(|e| choice_error(&name_key, e.to_string()))?;
            let enc = plugin.encoder(component).map_err(|e| choice_error(&name_key, e.to_string()))?;
            PluginEncoder::init(enc, input_len, input.embed_dim, device)
        }
        Carrier::Wasm => {
            if component != WASM_ENCODER {
                return Err(choice_error(
                    &name_key,
                    format!(
                        "{id} is a WASM plugin, whose one encoder is named {WASM_ENCODER:?}: use \"{id}/{WASM_ENCODER}\""
                    ),
                ));
            }
            let client =
                crate::wasm_client::WasmTokenizer::spawn(&dir.dir).map_err(|e| choice_error(&name_key, e.to_string()))?;
            if !client.is_encoder {
                return Err(choice_error(&name_key, format!("{id} {} exports no encoder", client.version)));
            }
            let modality = key.split('.').next().unwrap_or("").to_string();
            PluginEncoder::init_wasm(client, &modality, input_len, input.embed_dim, device)
        }
    }
    .map_err(|e| choice_error(&name_key, e.to_string()))?;
    Ok((Encoder::Plugin(encoder), Some(provenance)))
}

/// The name of the one encoder a WASM plugin exports (`encoder_forward`).
pub const WASM_ENCODER: &str = "encoder";

/// The contrastive loss: the built-in InfoNCE or a plugin's.
#[derive(Debug, Clone)]
pub enum Loss {
    InfoNce(astroclip_builtin::infonce::InfoNce),
    Plugin(PluginLoss),
}

transparent_module!(Loss { InfoNce, Plugin });

impl Loss {
    /// The loss, with a plugin's failure as an error naming it instead of a panic.
    pub fn try_loss(&self, a: Tensor<2>, b: Tensor<2>) -> Result<Tensor<1>, crate::plugin_encoder::TensorError> {
        match self {
            Self::InfoNce(l) => Ok(l.loss(a, b)),
            Self::Plugin(l) => l.try_loss(a, b),
        }
    }
}

impl ContrastiveLoss for Loss {
    fn info(&self) -> ComponentInfo {
        match self {
            Self::InfoNce(l) => l.info(),
            Self::Plugin(l) => l.info(),
        }
    }

    fn loss(&self, a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
        match self {
            Self::InfoNce(l) => l.loss(a, b),
            Self::Plugin(l) => l.loss(a, b),
        }
    }

    fn logit_scale(&self) -> f32 {
        match self {
            Self::InfoNce(l) => l.logit_scale(),
            Self::Plugin(l) => l.logit_scale(),
        }
    }
}

/// Builds the loss `kind` (`infonce`, or `<plugin>/<loss>` of a native plugin: an installed id
/// or a plugin directory) for embeddings of width `dim`.
pub fn build_loss(
    key: &str,
    kind: &str,
    infonce: &astroclip_builtin::infonce::InfoNceConfig,
    dim: usize,
    home: &Path,
    device: &Device,
) -> Result<(Loss, Option<PluginProvenance>), ChoiceError> {
    if kind == "infonce" {
        return Ok((Loss::InfoNce(infonce.init(device)), None));
    }
    let Some((id, name)) = kind.rsplit_once('/') else {
        return Err(choice_error(
            key,
            format!("unknown loss {kind:?}; available: infonce, <plugin-id>/<loss> of an installed native plugin"),
        ));
    };
    let dir = Installed::new(home).resolve(id).map_err(|e| choice_error(key, e.to_string()))?;
    if dir.manifest.entry.carrier != Carrier::Native {
        return Err(choice_error(key, format!("{id} is a WASM plugin; losses come from native plugins")));
    }
    let plugin =
        astroclip_plugin_host::native::NativePlugin::load(&dir).map_err(|e| choice_error(key, e.to_string()))?;
    let loss = plugin.loss(name).map_err(|e| choice_error(key, e.to_string()))?;
    let loss = PluginLoss::init(loss, dim, device).map_err(|e| choice_error(key, e.to_string()))?;
    let provenance = PluginProvenance {
        id: dir.id().to_string(),
        version: dir.version().to_string(),
        sha256: dir.manifest.entry.sha256.clone(),
    };
    Ok((Loss::Plugin(loss), Some(provenance)))
}
