//! Pre-compressed copies of the web demo's files (`<file>.br`, brotli quality 11, and
//! `<file>.gz`, gzip level 9), served instead of the file to browsers that accept them, and the
//! sizes a page load transfers.

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

/// File types worth compressing (the JPEG gallery gains nothing).
const COMPRESSED: &[&str] = &["wasm", "js", "html", "css", "json", "bpk"];

/// A content encoding the server can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `br`.
    Brotli,
    /// `gzip`.
    Gzip,
}

impl Encoding {
    /// Best first.
    pub const ALL: [Encoding; 2] = [Encoding::Brotli, Encoding::Gzip];

    /// The `Content-Encoding` / `Accept-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gz",
        }
    }

    fn encode(self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Encoding::Gzip => {
                let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
                encoder.write_all(bytes)?;
                encoder.finish()
            }
            Encoding::Brotli => {
                let mut out = Vec::new();
                let params = brotli::enc::BrotliEncoderParams {
                    quality: 11,
                    lgwin: 24,
                    ..Default::default()
                };
                brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)?;
                Ok(out)
            }
        }
    }
}

/// Bytes on disk and sent under each encoding (the raw size where no copy is smaller).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// On disk.
    pub raw: u64,
    /// Sent to a browser that accepts gzip.
    pub gzip: u64,
    /// Sent to a browser that accepts brotli.
    pub brotli: u64,
}

impl Sizes {
    fn add(&mut self, raw: u64, gzip: u64, brotli: u64) {
        self.raw += raw;
        self.gzip += gzip;
        self.brotli += brotli;
    }
}

fn compressible(path: &Path) -> bool {
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    COMPRESSED.contains(&extension)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// `<file>.br` / `<file>.gz`.
pub fn encoded_path(path: &Path, encoding: Encoding) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(encoding.suffix());
    PathBuf::from(name)
}

/// Writes the compressed copy of `path` under `encoding` when it is smaller; the bytes sent.
fn compress_one(path: &Path, bytes: &[u8], encoding: Encoding) -> Result<u64, String> {
    let packed = encoding
        .encode(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if packed.len() >= bytes.len() {
        return Ok(bytes.len() as u64);
    }
    let out = encoded_path(path, encoding);
    std::fs::write(&out, &packed).map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(packed.len() as u64)
}

/// Writes compressed copies beside every compressible file under `dir` and returns the sizes
/// of the wasm module and of everything but the gallery (what the page loads before any image
/// is shown).
pub fn precompress(dir: &Path) -> Result<(Sizes, Sizes), String> {
    let mut all = Vec::new();
    files(dir, &mut all).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (mut wasm, mut page) = (Sizes::default(), Sizes::default());
    for path in all {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let raw = bytes.len() as u64;
        let (gzip, brotli) = match compressible(&path) {
            true => (
                compress_one(&path, &bytes, Encoding::Gzip)?,
                compress_one(&path, &bytes, Encoding::Brotli)?,
            ),
            false => (raw, raw),
        };
        if !path.components().any(|c| c.as_os_str() == "gallery") {
            page.add(raw, gzip, brotli);
        }
        if path.extension().is_some_and(|e| e == "wasm") {
            wasm.add(raw, gzip, brotli);
        }
    }
    Ok((wasm, page))
}

/// The encodings an `Accept-Encoding` header value accepts (not with `q=0`), best first.
pub fn accepted(value: &str) -> Vec<Encoding> {
    let accepts = |token: &str| {
        value.split(',').any(|part| {
            let mut fields = part.split(';').map(|f| f.replace(' ', ""));
            let coding = fields.next().unwrap_or_default();
            let refused = fields.any(|f| f == "q=0" || f == "q=0.0" || f == "q=0.00");
            (coding.eq_ignore_ascii_case(token) || coding == "*") && !refused
        })
    };
    Encoding::ALL
        .into_iter()
        .filter(|e| accepts(e.token()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn encodings_are_accepted_as_browsers_ask_for_them() {
        use Encoding::*;
        assert_eq!(accepted("gzip, deflate, br, zstd"), vec![Brotli, Gzip]);
        assert_eq!(accepted("br;q=1.0, gzip;q=0.8"), vec![Brotli, Gzip]);
        assert_eq!(accepted("gzip, deflate"), vec![Gzip]);
        assert_eq!(accepted("*"), vec![Brotli, Gzip]);
        assert_eq!(accepted("gzip;q=0, br"), vec![Brotli]);
        assert!(accepted("deflate").is_empty());
        assert!(accepted("").is_empty());
    }

    #[test]
    fn precompressed_files_round_trip() {
        let dir = std::env::temp_dir().join(format!("xtask-compress-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("gallery")).unwrap();
        let text = "let x = 1;\n".repeat(500);
        std::fs::write(dir.join("demo.js"), &text).unwrap();
        std::fs::write(dir.join("gallery/a.png"), [1u8, 2, 3]).unwrap();
        let (wasm, page) = precompress(&dir).unwrap();
        assert_eq!(wasm, Sizes::default());
        assert_eq!(page.raw, text.len() as u64);
        let js = dir.join("demo.js");
        let gz = std::fs::read(encoded_path(&js, Encoding::Gzip)).unwrap();
        let br = std::fs::read(encoded_path(&js, Encoding::Brotli)).unwrap();
        assert_eq!((page.gzip, page.brotli), (gz.len() as u64, br.len() as u64));
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut unzipped)
            .unwrap();
        let mut unbrotli = String::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_string(&mut unbrotli)
            .unwrap();
        assert_eq!(
            (unzipped.as_str(), unbrotli.as_str()),
            (text.as_str(), text.as_str())
        );
        assert!(!encoded_path(&dir.join("gallery/a.png"), Encoding::Gzip).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
