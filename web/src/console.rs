//! Panics and `log` records go to the browser console, where the page (and
//! the browser tests, which forward console errors) can see them. Without
//! this a panic in wasm shows only as "unreachable executed".

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(s: &str);
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(s: &str);
    #[wasm_bindgen(js_namespace = console, js_name = log)]
    fn console_log(s: &str);
}

struct Console;

impl log::Log for Console {
    fn enabled(&self, m: &log::Metadata) -> bool {
        // wgpu and naga are chatty at info; their warnings matter.
        m.level() <= log::Level::Warn || m.target().starts_with("framecast")
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = format!("[{}] {}", r.target(), r.args());
        match r.level() {
            log::Level::Error => console_error(&line),
            log::Level::Warn => console_warn(&line),
            _ => console_log(&line),
        }
    }

    fn flush(&self) {}
}

static CONSOLE: Console = Console;

pub fn install() {
    std::panic::set_hook(Box::new(|info| console_error(&format!("panic: {info}"))));
    // Fails only if a logger is already set, which is then kept.
    if log::set_logger(&CONSOLE).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}
