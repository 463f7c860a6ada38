//! A probe from a native plugin behind the host's [`Probe`] trait (array interface, plugin
//! interface 1.1): the fitted state stays in the plugin behind an opaque pointer that the host
//! passes back and finally hands to the plugin's `destroy`; errors come back as data.
#![allow(unsafe_code)] // calls into the plugin's extern "C" table; each block says why

use astroclip_plugin_api::{ComponentError, ComponentInfo, ComponentKind, Probe, ProbeInput};
use astroclip_plugin_host::native::NativeProbe;
use astroclip_plugin_sdk::ErrBuf;

pub struct PluginProbe {
    probe: NativeProbe,
    name: String,
    state: *mut std::ffi::c_void,
}

// SAFETY: the state is only touched through `&mut self` / `&self` calls, one at a time; the
// plugin's contract (interface 1.1) is that a probe state is not tied to a thread.
unsafe impl Send for PluginProbe {}

impl PluginProbe {
    pub fn new(probe: NativeProbe) -> Result<Self, ComponentError> {
        // SAFETY: static string of the plugin, never unloaded.
        let name = unsafe { probe.table.name.to_string_lossy() };
        // SAFETY: `create` takes no arguments and returns an owned state or null.
        let state = unsafe { (probe.table.create)() };
        if state.is_null() {
            return Err(ComponentError::Other {
                component: format!("{}/{name}", probe.plugin_id),
                detail: format!("plugin {} {}: create() failed", probe.plugin_id, probe.plugin_version),
            });
        }
        Ok(Self { probe, name, state })
    }

    fn call(&self, what: &str, f: impl FnOnce(*mut ErrBuf) -> i32) -> Result<(), ComponentError> {
        let mut msg = vec![0u8; 1024];
        let mut err = ErrBuf { msg: msg.as_mut_ptr(), cap: msg.len(), len: 0, code: 0 };
        let code = f(&mut err);
        if code == astroclip_plugin_sdk::OK {
            return Ok(());
        }
        let len = err.len.min(msg.len());
        Err(ComponentError::Other {
            component: format!("{}/{}", self.probe.plugin_id, self.name),
            detail: format!(
                "plugin {} {}: {what} failed (code {code}): {}",
                self.probe.plugin_id,
                self.probe.plugin_version,
                String::from_utf8_lossy(&msg[..len])
            ),
        })
    }
}

impl Probe for PluginProbe {
    fn info(&self) -> ComponentInfo {
        ComponentInfo {
            id: format!("{}/{}", self.probe.plugin_id, self.name),
            version: self.probe.plugin_version.to_string(),
            kind: ComponentKind::Probe,
            modality: None,
        }
    }

    fn fit(&mut self, x: ProbeInput<'_>, y: &[f32]) -> Result<(), ComponentError> {
        if y.len() != x.rows {
            return Err(ComponentError::Shape {
                component: self.name.clone(),
                detail: format!("{} rows, {} targets", x.rows, y.len()),
            });
        }
        let (state, table) = (self.state, self.probe.table);
        // SAFETY: host-owned buffers of exactly rows·cols and rows values; `state` from create.
        self.call("fit", |err| unsafe { (table.fit)(state, x.values.as_ptr(), x.rows, x.cols, y.as_ptr(), err) })
    }

    fn predict(&self, x: ProbeInput<'_>) -> Result<Vec<f32>, ComponentError> {
        let mut out = vec![0f32; x.rows];
        let (state, table) = (self.state, self.probe.table);
        // SAFETY: as in `fit`; `out` has `rows` writable values.
        self.call("predict", |err| unsafe {
            (table.predict)(state, x.values.as_ptr(), x.rows, x.cols, out.as_mut_ptr(), err)
        })?;
        Ok(out)
    }
}

impl Drop for PluginProbe {
    fn drop(&mut self) {
        // SAFETY: the state came from this probe's `create` and is destroyed exactly once.
        unsafe { (self.probe.table.destroy)(self.state) };
    }
}
