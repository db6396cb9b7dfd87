//! `cargo xtask web`: build the browser demo (wasm + page + model + gallery), serve it on
//! localhost, and test it in headless Chromium against the native model.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::compress::{self, Encoding};
use crate::{cargo, run, target_dir, workspace_root};

/// Settings of `cargo xtask web`.
#[derive(clap::Args, Debug)]
pub struct Web {
    /// CIFAR-10: the `cifar10-jpg.tar.gz` archive or an extracted folder with `test/<class>/`.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Port to serve on (127.0.0.1).
    #[arg(long, default_value_t = 8080, value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Build (and test) only; do not serve.
    #[arg(long = "no-serve", action = clap::ArgAction::SetFalse)]
    pub serve: bool,
    /// Check the page in headless Chromium against the native model after building.
    #[arg(long)]
    pub test: bool,
    /// Gallery images per class.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    pub per_class: u64,
}

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const DEMO: &str = "examples/web-demo";

fn demo_dir() -> PathBuf {
    workspace_root().join(DEMO)
}

/// The folder the page is assembled in.
fn dist_dir() -> PathBuf {
    target_dir().join("web-demo")
}

/// The wasm-bindgen version in Cargo.lock: the CLI must be the same version.
fn locked_wasm_bindgen() -> Result<String, String> {
    let lock_path = workspace_root().join("Cargo.lock");
    let lock =
        std::fs::read_to_string(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(version) = lines
                .next()
                .and_then(|l| l.strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
        {
            return Ok(version.to_string());
        }
    }
    Err(format!("{}: no wasm-bindgen entry", lock_path.display()))
}

fn check_tools() -> Result<(), String> {
    if let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    {
        let installed = String::from_utf8_lossy(&output.stdout);
        if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
            return Err(format!(
                "the {WASM_TARGET} target is not installed: rustup target add {WASM_TARGET}"
            ));
        }
    }
    let wanted = locked_wasm_bindgen()?;
    let found = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match found {
        Some(version) if version.ends_with(&wanted) => Ok(()),
        found => Err(format!(
            "wasm-bindgen {wanted} is needed (the version in Cargo.lock), found {}: \
             cargo install wasm-bindgen-cli --version {wanted}",
            found.unwrap_or_else(|| "none".into())
        )),
    }
}

/// CIFAR-10's `test/` folder: given, or extracted from the archive into the target folder.
fn cifar10_test(data: Option<&Path>) -> Result<PathBuf, String> {
    let archive = match data {
        Some(dir) if dir.join("test").is_dir() => return Ok(dir.join("test")),
        Some(dir) if dir.is_dir() => {
            return Err(format!("{}: no test/<class>/ folders", dir.display()));
        }
        Some(path) => path.to_path_buf(),
        None => crate::shared_dir().join("data/cifar10-jpg.tar.gz"),
    };
    let dest = target_dir().join("web-demo-data");
    let test = dest.join("cifar10-jpg/test");
    if test.is_dir() {
        return Ok(test);
    }
    if !archive.is_file() {
        return Err(format!(
            "CIFAR-10 not found at {}: the gallery is made of real CIFAR-10 test images; pass \
             --data with the cifar10-jpg.tar.gz archive or an extracted folder holding test/<class>/",
            archive.display()
        ));
    }
    std::fs::create_dir_all(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    println!(
        "extracting the CIFAR-10 test images from {}",
        archive.display()
    );
    let mut tar = Command::new("tar");
    tar.arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(&dest)
        .arg("cifar10-jpg/test");
    run(tar)?;
    Ok(test)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_file() {
            let dest = to.join(path.file_name().expect("a file has a name"));
            std::fs::copy(&path, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        }
    }
    Ok(())
}

/// Builds the page into `target/web-demo/` and returns that folder.
pub fn build(web: &Web) -> Result<PathBuf, String> {
    check_tools()?;
    let test_images = cifar10_test(web.data.as_deref())?;
    let mut wasm = cargo();
    wasm.args([
        "build",
        "-p",
        "repopt-web-demo",
        "--lib",
        "--target",
        WASM_TARGET,
        "--profile",
        "wasm",
    ]);
    run(wasm)?;

    let dist = dist_dir();
    if dist.exists() {
        std::fs::remove_dir_all(&dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    }
    let mut bindgen = Command::new("wasm-bindgen");
    bindgen
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(dist.join("pkg"))
        .arg(target_dir().join(format!("{WASM_TARGET}/wasm/repopt_web_demo.wasm")));
    run(bindgen)?;
    copy_dir(&demo_dir().join("www"), &dist)?;
    copy_dir(&demo_dir().join("model"), &dist.join("model"))?;

    // Built with the whole workspace's features, so that it reuses the test build's artifacts.
    let mut native = cargo();
    native.args(["build", "--workspace", "--bin", "repopt-web-demo"]);
    run(native)?;
    let mut gallery = Command::new(target_dir().join("debug/repopt-web-demo"));
    gallery
        .args(["gallery", "--model"])
        .arg(demo_dir().join("model"))
        .arg("--images")
        .arg(&test_images)
        .args(["--per-class", &web.per_class.to_string(), "--out"])
        .arg(dist.join("gallery"));
    run(gallery)?;
    let (wasm, page) = compress::precompress(&dist)?;
    let mb = |bytes: u64| bytes as f64 / 1e6;
    println!(
        "built the page in {}: wasm {:.2} MB ({:.2} MB gzip, {:.2} MB brotli); the page without \
         the gallery transfers {:.2} MB with brotli, {:.2} MB with gzip ({:.2} MB on disk)",
        dist.display(),
        mb(wasm.raw),
        mb(wasm.gzip),
        mb(wasm.brotli),
        mb(page.brotli),
        mb(page.gzip),
        mb(page.raw)
    );
    Ok(dist)
}

/// The content type of a served file.
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        _ => "application/octet-stream",
    }
}

/// The file under `root` a request path names, refusing anything that leaves `root`.
fn resolve(root: &Path, request_path: &str) -> Option<PathBuf> {
    let path = request_path.split(['?', '#']).next().unwrap_or("/");
    let relative = Path::new(path.trim_start_matches('/'));
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let file = root.join(relative);
    if file.is_dir() {
        Some(file.join("index.html"))
    } else {
        Some(file)
    }
}

/// What a request gets: status, body, content type, the body's encoding (the best of
/// `accepted` that has a compressed copy).
fn answer(
    root: &Path,
    method: &str,
    path: &str,
    accepted: &[Encoding],
) -> std::io::Result<Response> {
    let file = resolve(root, path).filter(|f| f.is_file());
    Ok(match (method, file) {
        ("GET" | "HEAD", Some(file)) => {
            let encoding = accepted
                .iter()
                .copied()
                .find(|e| compress::encoded_path(&file, *e).is_file());
            let body = match encoding {
                Some(e) => std::fs::read(compress::encoded_path(&file, e))?,
                None => std::fs::read(&file)?,
            };
            ("200 OK", body, content_type(&file), encoding)
        }
        ("GET" | "HEAD", None) => ("404 Not Found", b"not found".to_vec(), "text/plain", None),
        _ => (
            "405 Method Not Allowed",
            b"method not allowed".to_vec(),
            "text/plain",
            None,
        ),
    })
}

type Response = (&'static str, Vec<u8>, &'static str, Option<Encoding>);

fn respond(mut stream: TcpStream, root: &Path) -> std::io::Result<()> {
    let mut request_line = String::new();
    let mut reader = BufReader::new(stream.try_clone()?);
    reader.read_line(&mut request_line)?;
    let mut accepted = Vec::new();
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("accept-encoding")
        {
            accepted = compress::accepted(value.trim());
        }
        header.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let (status, body, kind, encoding) = answer(root, method, path, &accepted)?;
    let encoding = encoding.map_or(String::new(), |e| {
        format!("Content-Encoding: {}\r\n", e.token())
    });
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{encoding}\
         Vary: Accept-Encoding\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        stream.write_all(&body)?;
    }
    stream.flush()
}

/// Serves `root` on `listener` until the process ends, one thread per connection.
fn serve_forever(listener: TcpListener, root: PathBuf) {
    for stream in listener.incoming().flatten() {
        let root = root.clone();
        std::thread::spawn(move || {
            let _ = respond(stream, &root);
        });
    }
}

fn bind(port: u16) -> Result<TcpListener, String> {
    TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))
}

/// Loads the page in headless Chromium (CPU fallback, then WebGPU with a software adapter) and
/// checks its predictions against the native model's.
fn browser_test(dist: &Path) -> Result<(), String> {
    let tests = demo_dir().join("browser-test");
    if !tests.join("node_modules/playwright-core").is_dir() {
        return Err(format!(
            "playwright-core is not installed: (cd {} && npm ci)",
            tests.display()
        ));
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).is_file() {
        return Err(format!(
            "Chromium not found at {chromium} (set CHROMIUM, or on Debian: apt-get install chromium)"
        ));
    }
    let listener = bind(0)?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let root = dist.to_path_buf();
    std::thread::spawn(move || serve_forever(listener, root));
    let out = target_dir().join("web-demo-test");
    let mut node = Command::new("node");
    node.arg(tests.join("browser.mjs"))
        .args(["--url", &format!("http://127.0.0.1:{port}/")])
        .arg("--dist")
        .arg(dist)
        .arg("--out")
        .arg(&out)
        .args(["--chromium", &chromium]);
    run(node)?;
    println!(
        "browser test passed; screenshots and report in {}",
        out.display()
    );
    Ok(())
}

/// `cargo xtask web`.
pub fn web(web: &Web) -> Result<(), String> {
    let dist = build(web)?;
    if web.test {
        browser_test(&dist)?;
    }
    if web.serve {
        let listener = bind(web.port)?;
        println!(
            "serving {} on http://127.0.0.1:{}/ (Ctrl-C to stop)",
            dist.display(),
            web.port
        );
        serve_forever(listener, dist);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_cannot_leave_the_served_folder() {
        let root = Path::new("/srv/page");
        assert_eq!(
            resolve(root, "/pkg/demo.js?v=1"),
            Some(root.join("pkg/demo.js"))
        );
        assert_eq!(resolve(root, "/../secret"), None);
        assert_eq!(resolve(root, "/a/../../secret"), None);
        assert_eq!(content_type(Path::new("x.wasm")), "application/wasm");
    }

    #[test]
    fn compressed_copies_are_served_only_to_browsers_that_accept_them() {
        let root = std::env::temp_dir().join(format!("xtask-serve-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("demo.js"), "plain").unwrap();
        std::fs::write(root.join("demo.js.gz"), "gzipped").unwrap();
        std::fs::write(root.join("demo.js.br"), "brotli").unwrap();
        let body = |accepted: &[Encoding]| {
            let (_, body, kind, encoding) = answer(&root, "GET", "/demo.js", accepted).unwrap();
            assert_eq!(kind, content_type(Path::new("a.js")));
            (String::from_utf8(body).unwrap(), encoding)
        };
        use Encoding::*;
        assert_eq!(body(&[Brotli, Gzip]), ("brotli".into(), Some(Brotli)));
        assert_eq!(body(&[Gzip]), ("gzipped".into(), Some(Gzip)));
        assert_eq!(body(&[]), ("plain".into(), None));
        std::fs::remove_file(root.join("demo.js.br")).unwrap();
        assert_eq!(body(&[Brotli, Gzip]), ("gzipped".into(), Some(Gzip)));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
