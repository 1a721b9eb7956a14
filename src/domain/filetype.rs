//! What a file really is, decided from its bytes (never from the client's claim): the MIME type
//! for the allow-list, and the refusal of executables however they are named (SPEC §2).

use std::io::{Read, Seek};

use file_format::FileFormat;

/// The outcome of looking at an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; the canonical MIME type.
    Allowed(String),
    /// Recognised but not on the allow-list (415).
    Unsupported(String),
    /// An executable or script (422); names what was found.
    Executable(&'static str),
}

/// Extensions of programs and scripts: refused even when the bytes look harmless.
const EXECUTABLE_EXTENSIONS: &[&str] = &[
    "exe", "dll", "com", "scr", "msi", "msp", "mst", "apk", "aab", "xapk", "jar", "class", "dex", "wasm", "sh", "bash",
    "zsh", "ksh", "csh", "fish", "bat", "cmd", "ps1", "psm1", "psd1", "vbs", "vbe", "js", "jse", "mjs", "wsf", "wsh",
    "hta", "lnk", "elf", "app", "dmg", "pkg", "deb", "rpm", "run", "so", "dylib", "reg", "cpl", "msc", "pif", "gadget",
    "ko", "appimage", "py", "pyc", "pl", "rb", "php", "lua", "ipa", "xap", "appx", "msix", "command",
];

/// Formats that are programs, whatever they are called.
fn executable_format(f: FileFormat) -> Option<&'static str> {
    use FileFormat::*;
    Some(match f {
        ExecutableAndLinkableFormat => "ELF executable",
        PortableExecutable | DynamicLinkLibrary | MsDosExecutable => "Windows executable",
        MachO => "Mach-O executable",
        MicrosoftSoftwareInstaller => "Windows installer (MSI)",
        AndroidPackage | AndroidAppBundle => "Android package",
        JavaArchive | JavaClass | WebApplicationArchive => "Java program",
        DalvikExecutable => "Android executable",
        WebassemblyBinary | WebassemblyText => "WebAssembly module",
        ShellScript | PythonScript | LuaScript | LuaBytecode => "script",
        MsDosBatch => "batch script",
        WindowsShortcut => "Windows shortcut",
        CommonObjectFileFormat => "object code",
        DebianPackage | RedHatPackageManager | AppleDiskImage => "software package",
        WindowsAppPackage | WindowsAppBundle => "Windows app package",
        XboxExecutable | NintendoSwitchExecutable => "console executable",
        _ => return None,
    })
}

/// Magic numbers checked on the first bytes too, so a truncated or odd header cannot slip by.
fn executable_magic(prefix: &[u8]) -> Option<&'static str> {
    const MACHO: [[u8; 4]; 5] = [
        [0xfe, 0xed, 0xfa, 0xce],
        [0xfe, 0xed, 0xfa, 0xcf],
        [0xce, 0xfa, 0xed, 0xfe],
        [0xcf, 0xfa, 0xed, 0xfe],
        [0xca, 0xfe, 0xba, 0xbe],
    ];
    if prefix.starts_with(b"\x7fELF") {
        Some("ELF executable")
    } else if prefix.starts_with(b"MZ") {
        Some("Windows executable")
    } else if prefix.len() >= 4 && MACHO.iter().any(|m| prefix.starts_with(m)) {
        Some("Mach-O executable")
    } else if prefix.starts_with(b"\0asm") {
        Some("WebAssembly module")
    } else if prefix.starts_with(b"#!") {
        Some("script")
    } else if prefix.starts_with(b"dex\n") {
        Some("Android executable")
    } else {
        None
    }
}

/// Batch, PowerShell and VBScript files have no magic number: recognise their usual openings.
fn script_text(prefix: &[u8]) -> Option<&'static str> {
    let text = String::from_utf8_lossy(&prefix[..prefix.len().min(4096)]).to_lowercase();
    let first = text.trim_start_matches('\u{feff}').lines().map(str::trim).find(|l| !l.is_empty())?;
    const OPENINGS: &[&str] = &[
        "@echo",
        "echo off",
        "rem ",
        "setlocal",
        "@setlocal",
        "powershell",
        "#requires",
        "param(",
        "set-executionpolicy",
        "wscript.",
        "createobject(",
        "option explicit",
        "on error resume next",
        "<script",
        "<job",
        "<package",
    ];
    OPENINGS.iter().any(|o| first.starts_with(o)).then_some("script")
}

fn extension(name: &str) -> Option<String> {
    name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())
}

/// Canonical MIME type of a detected format.
fn mime_of(f: FileFormat, name: &str) -> String {
    use FileFormat::*;
    let m = match f {
        JointPhotographicExpertsGroup => "image/jpeg",
        PortableNetworkGraphics | AnimatedPortableNetworkGraphics => "image/png",
        GraphicsInterchangeFormat => "image/gif",
        Webp => "image/webp",
        Mpeg4Part14 | Mpeg4Part14Video => "video/mp4",
        Mpeg4Part14Audio | AppleItunesAudio => "audio/mp4",
        Webm => "video/webm",
        AppleQuicktime => "video/quicktime",
        Mpeg12AudioLayer3 => "audio/mpeg",
        WaveformAudio => "audio/wav",
        OggVorbis | OggOpus | OggFlac | OggSpeex => "audio/ogg",
        OggTheora | OggMedia | OggMultiplexedMedia => "video/ogg",
        FreeLosslessAudioCodec => "audio/flac",
        PortableDocumentFormat => "application/pdf",
        MicrosoftWordDocument => "application/msword",
        MicrosoftExcelSpreadsheet => "application/vnd.ms-excel",
        MicrosoftPowerpointPresentation => "application/vnd.ms-powerpoint",
        OfficeOpenXmlDocument => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        OfficeOpenXmlSpreadsheet => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        OfficeOpenXmlPresentation => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        OpendocumentText => "application/vnd.oasis.opendocument.text",
        OpendocumentSpreadsheet => "application/vnd.oasis.opendocument.spreadsheet",
        OpendocumentPresentation => "application/vnd.oasis.opendocument.presentation",
        RichTextFormat => "application/rtf",
        PlainText if extension(name).as_deref() == Some("csv") => "text/csv",
        PlainText => "text/plain",
        other => return other.media_type().to_string(),
    };
    m.to_string()
}

/// Plain text: valid UTF-8 (a character cut at the end of the sample is fine), no NUL, few controls.
fn looks_like_text(prefix: &[u8]) -> bool {
    if prefix.is_empty() || prefix.contains(&0) {
        return false;
    }
    let valid = match std::str::from_utf8(prefix) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > prefix.len(),
    };
    let controls = prefix.iter().filter(|b| **b < 0x20 && !matches!(**b, b'\n' | b'\r' | b'\t' | 0x0c)).count();
    valid && controls * 100 <= prefix.len()
}

/// Markup that browsers would run: never accepted as "text".
fn markup(prefix: &[u8]) -> Option<&'static str> {
    let head = String::from_utf8_lossy(&prefix[..prefix.len().min(1024)])
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_lowercase();
    if head.starts_with("<!doctype html")
        || head.starts_with("<html")
        || head.starts_with("<head")
        || head.starts_with("<body")
    {
        Some("text/html")
    } else if head.starts_with("<svg") || (head.starts_with("<?xml") && head.contains("<svg")) {
        Some("image/svg+xml")
    } else if head.starts_with("<?xml") {
        Some("application/xml")
    } else {
        None
    }
}

/// Decides what an upload is. `reader` reads the whole stored file (deep inspection of ZIP and
/// OLE containers needs it); `prefix` holds its first bytes; `name` is the sanitised file name.
pub fn classify<R: Read + Seek>(reader: R, prefix: &[u8], name: &str, allowed: &[String]) -> Verdict {
    if let Some(kind) = executable_magic(prefix) {
        return Verdict::Executable(kind);
    }
    let format = FileFormat::from_reader(reader).unwrap_or(FileFormat::ArbitraryBinaryData);
    if let Some(kind) = executable_format(format) {
        return Verdict::Executable(kind);
    }
    if let Some(ext) = extension(name)
        && EXECUTABLE_EXTENSIONS.contains(&ext.as_str())
    {
        return Verdict::Executable("program or script (by its file name)");
    }
    let mime = match format {
        FileFormat::ArbitraryBinaryData
        | FileFormat::PlainText
        | FileFormat::HypertextMarkupLanguage
        | FileFormat::ExtensibleMarkupLanguage
        | FileFormat::ScalableVectorGraphics => {
            if let Some(kind) = script_text(prefix) {
                return Verdict::Executable(kind);
            }
            if let Some(m) = markup(prefix) {
                m.to_string()
            } else if format == FileFormat::PlainText || looks_like_text(prefix) {
                mime_of(FileFormat::PlainText, name)
            } else {
                mime_of(format, name)
            }
        }
        other => mime_of(other, name),
    };
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(&mime)) {
        Verdict::Allowed(mime)
    } else {
        Verdict::Unsupported(mime)
    }
}

// The default allow-lists: config's `asset_allowed_types` and `chat_allowed_types`.
const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];
const MEDIA_TYPES: &[&str] = &[
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "audio/mpeg",
    "audio/wav",
    "audio/ogg",
    "video/ogg",
    "application/ogg",
    "audio/mp4",
    "audio/flac",
];
const DOCUMENT_TYPES: &[&str] = &[
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/rtf",
];
const TEXT_TYPES: &[&str] = &["text/plain", "text/csv"];

fn types(groups: &[&[&str]]) -> Vec<String> {
    groups.iter().flat_map(|g| g.iter().map(|t| t.to_string())).collect()
}

/// Assets accept images, audio and video, documents and text.
pub fn default_asset_types() -> Vec<String> {
    types(&[IMAGE_TYPES, MEDIA_TYPES, DOCUMENT_TYPES, TEXT_TYPES])
}

/// Chat accepts images, PDF, office documents and text (SPEC §7).
pub fn default_chat_types() -> Vec<String> {
    types(&[IMAGE_TYPES, DOCUMENT_TYPES, TEXT_TYPES])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn check(bytes: &[u8], name: &str) -> Verdict {
        let allowed = default_asset_types();
        classify(Cursor::new(bytes), &bytes[..bytes.len().min(65536)], name, &allowed)
    }

    #[test]
    fn images_and_documents_are_recognised() {
        assert_eq!(check(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "x.bin"), Verdict::Allowed("image/png".into()));
        assert_eq!(check(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "doc"), Verdict::Allowed("application/pdf".into()));
        assert_eq!(check(b"hello world\nsecond line\n", "notes.txt"), Verdict::Allowed("text/plain".into()));
        assert_eq!(check(b"a,b\n1,2\n", "t.csv"), Verdict::Allowed("text/csv".into()));
    }

    #[test]
    fn executables_are_refused_whatever_their_name() {
        assert!(matches!(check(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0", "cat.jpg"), Verdict::Executable(_)));
        assert!(matches!(check(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff", "report.pdf"), Verdict::Executable(_)));
        assert!(matches!(check(b"\xcf\xfa\xed\xfe\x07\0\0\x01", "song.mp3"), Verdict::Executable(_)));
        assert!(matches!(check(b"#!/bin/sh\nrm -rf /\n", "readme.txt"), Verdict::Executable(_)));
        assert!(matches!(check(b"@echo off\r\ndel C:\\*\r\n", "notes.txt"), Verdict::Executable(_)));
        assert!(matches!(check(b"\0asm\x01\0\0\0", "data.txt"), Verdict::Executable(_)));
        assert!(matches!(check(b"just text", "run.bat"), Verdict::Executable(_)));
    }

    #[test]
    fn unknown_binary_and_markup_are_unsupported() {
        assert!(matches!(check(&[0x13, 0x37, 0x00, 0xff, 0x00, 0x01, 0x02], "x.dat"), Verdict::Unsupported(_)));
        assert_eq!(
            check(b"<!DOCTYPE html><script>alert(1)</script>", "a.txt"),
            Verdict::Unsupported("text/html".into())
        );
        assert_eq!(
            check(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "a.svg"),
            Verdict::Unsupported("image/svg+xml".into())
        );
    }
}
