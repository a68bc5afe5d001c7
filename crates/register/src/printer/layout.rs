//! The small layout model every printed document is made of ([`Document`]: titles, text,
//! two-column rows, rules, a QR code), and its rendering into ESC/POS bytes for a paper width
//! through the `escpos` crate. Receipts, reports and the test page are built from it
//! (see [`super::documents`]); a new document (a Z report) is a function returning one.

use std::sync::{Arc, Mutex};

use escpos::driver::Driver;
use escpos::printer::Printer;
use escpos::printer_options::PrinterOptions;
use escpos::utils::{
    Encoder, JustifyMode, Protocol, QRCodeCorrectionLevel, QRCodeModel, QRCodeOption,
};
use serde::{Deserialize, Serialize};

use super::destination::Paper;
use crate::error::{Error, Result};

/// Blocks in one document, at most (a receipt of the longest cart stays well inside).
pub const DOCUMENT_BLOCKS_MAX: usize = 2_000;

/// One piece of a printed document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "block", content = "text", rename_all = "snake_case")]
pub enum Block {
    /// Centred, bold, double size (the store's name, COPY).
    Title(String),
    /// Centred.
    Center(String),
    /// Left, wrapped at the paper's width.
    Text(String),
    /// Left, bold.
    Bold(String),
    /// `left` on the left, `right` on the right of one line (an item and its price).
    Columns(String, String),
    /// A row of dashes.
    Rule,
    /// A QR code holding the text (the receipt number: scanned back for a return).
    Qr(String),
    /// An empty line.
    Feed,
}

/// A printed document: its blocks, top to bottom; printing cuts the paper after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub blocks: Vec<Block>,
}

impl Document {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, block: Block) -> &mut Self {
        self.blocks.push(block);
        self
    }

    pub fn title(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Block::Title(text.into()))
    }

    pub fn center(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Block::Center(text.into()))
    }

    pub fn text(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Block::Text(text.into()))
    }

    pub fn bold(&mut self, text: impl Into<String>) -> &mut Self {
        self.push(Block::Bold(text.into()))
    }

    pub fn columns(&mut self, left: impl Into<String>, right: impl Into<String>) -> &mut Self {
        self.push(Block::Columns(left.into(), right.into()))
    }

    pub fn rule(&mut self) -> &mut Self {
        self.push(Block::Rule)
    }

    pub fn qr(&mut self, data: impl Into<String>) -> &mut Self {
        self.push(Block::Qr(data.into()))
    }

    pub fn feed(&mut self) -> &mut Self {
        self.push(Block::Feed)
    }

    /// The document as plain lines at `paper`'s width (what the paper shows, codes left out):
    /// for logs, and for tests of the layout itself.
    pub fn plain_lines(&self, paper: Paper) -> Vec<String> {
        let width = paper.chars_per_line();
        let mut lines = Vec::new();
        for block in &self.blocks {
            match block {
                Block::Title(text) => lines.extend(wrap(text, width / 2)),
                Block::Center(text) | Block::Text(text) | Block::Bold(text) => {
                    lines.extend(wrap(text, width));
                }
                Block::Columns(left, right) => lines.extend(columns(left, right, width)),
                Block::Rule => lines.push("-".repeat(width)),
                Block::Feed => lines.push(String::new()),
                Block::Qr(_) => {}
            }
        }
        lines
    }
}

/// Cuts `text` into lines of at most `width` characters, at spaces where it can.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        while word.len() > width {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            lines.push(word.drain(..width).collect());
        }
        let word: String = word.into_iter().collect();
        let len = line.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// `left` and `right` on one line of `width`, or `left` wrapped with `right` on the last line
/// (or a line of its own) when they do not fit side by side.
pub fn columns(left: &str, right: &str, width: usize) -> Vec<String> {
    let right_len = right.chars().count();
    let mut lines = wrap(left, width.saturating_sub(right_len + 1).max(1));
    let last = lines.pop().unwrap_or_default();
    let last_len = last.chars().count();
    if last_len + 1 + right_len <= width {
        let gap = width - last_len - right_len;
        lines.push(format!("{last}{}{right}", " ".repeat(gap)));
    } else {
        lines.push(last);
        lines.push(format!(
            "{}{right}",
            " ".repeat(width.saturating_sub(right_len))
        ));
    }
    lines
}

/// What a print job sends before the document: a pulse to open the cash drawer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drawer {
    Closed,
    Open,
}

/// ESC p 0 t1 t2: a pulse on pin 2, 50 ms on, 500 ms off. Written by hand: `escpos` 0.20's
/// `cash_drawer` sends `ESC p m` without the two timing bytes the command takes, so a printer
/// would swallow the next two bytes of the document as timings.
const DRAWER_PULSE: [u8; 5] = [0x1B, b'p', 0, 25, 250];

/// The bytes of `document` on `paper`: initialise, code page WPC1252 (with €), the blocks, feed
/// and cut; with [`Drawer::Open`] the drawer pulse first. `cut` false leaves the paper uncut
/// (a drawer pulse alone prints nothing and needs no cut).
pub fn render(document: &Document, paper: Paper, drawer: Drawer) -> Result<Vec<u8>> {
    if document.blocks.len() > DOCUMENT_BLOCKS_MAX {
        return Err(Error::Invalid(format!(
            "a document of {} blocks; at most {DOCUMENT_BLOCKS_MAX} print",
            document.blocks.len()
        )));
    }
    let memory = Memory::default();
    let width = paper.chars_per_line();
    // Text is encoded as Windows-1252 and the printer told so (ESC t 16) by hand: `escpos`'s
    // page code tables map ASCII `-` to the soft hyphen (0xF0 in PC858), so a receipt number
    // would not read back.
    let options = PrinterOptions::new(None, None, u8::try_from(width).unwrap_or(48));
    let protocol = Protocol::new(Encoder::new(encoding_rs::WINDOWS_1252));
    let mut printer = Printer::new(memory.clone(), protocol, Some(options));
    let p = &mut printer;
    let esc =
        |e: escpos::errors::PrinterError| Error::Printer(format!("laying out a document: {e}"));
    p.init()
        .map_err(esc)?
        .custom(&SELECT_WPC1252)
        .map_err(esc)?;
    if drawer == Drawer::Open {
        p.custom(&DRAWER_PULSE).map_err(esc)?;
    }
    if !document.blocks.is_empty() {
        for block in &document.blocks {
            block_to(p, block, width).map_err(esc)?;
        }
        p.feeds(3).map_err(esc)?.cut().map_err(esc)?;
    }
    p.print().map_err(esc)?;
    Ok(memory.take())
}

fn block_to(p: &mut Printer<Memory>, block: &Block, width: usize) -> escpos::errors::Result<()> {
    match block {
        Block::Title(text) => {
            p.justify(JustifyMode::CENTER)?.bold(true)?.size(2, 2)?;
            for line in wrap(&printable(text), width / 2) {
                p.writeln(&line)?;
            }
            p.reset_size()?.bold(false)?.justify(JustifyMode::LEFT)?;
        }
        Block::Center(text) => {
            p.justify(JustifyMode::CENTER)?;
            for line in wrap(&printable(text), width) {
                p.writeln(&line)?;
            }
            p.justify(JustifyMode::LEFT)?;
        }
        Block::Text(text) => {
            for line in wrap(&printable(text), width) {
                p.writeln(&line)?;
            }
        }
        Block::Bold(text) => {
            p.bold(true)?;
            for line in wrap(&printable(text), width) {
                p.writeln(&line)?;
            }
            p.bold(false)?;
        }
        Block::Columns(left, right) => {
            for line in columns(&printable(left), &printable(right), width) {
                p.writeln(&line)?;
            }
        }
        Block::Rule => {
            p.writeln(&"-".repeat(width))?;
        }
        Block::Qr(data) => {
            let option = QRCodeOption::new(QRCodeModel::Model2, 6, QRCodeCorrectionLevel::M);
            p.justify(JustifyMode::CENTER)?
                .qrcode_option(data, option)?
                .justify(JustifyMode::LEFT)?;
        }
        Block::Feed => {
            p.feed()?;
        }
    }
    Ok(())
}

/// ESC t 16: character code table WPC1252.
const SELECT_WPC1252: [u8; 3] = [0x1B, b't', 16];

/// Text the code page can print: control characters become spaces, and a character
/// Windows-1252 lacks becomes `?` (the encoder would refuse the whole line).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if c.is_ascii() => c,
            c => {
                let mut buf = [0u8; 4];
                let (_, _, unmappable) = encoding_rs::WINDOWS_1252.encode(c.encode_utf8(&mut buf));
                if unmappable {
                    '?'
                } else {
                    c
                }
            }
        })
        .collect()
}

/// An in-memory `escpos` driver: the rendered bytes, sent later by the queue.
#[derive(Debug, Clone, Default)]
struct Memory(Arc<Mutex<Vec<u8>>>);

impl Memory {
    fn take(&self) -> Vec<u8> {
        std::mem::take(
            &mut *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

impl Driver for Memory {
    fn name(&self) -> String {
        "memory".into()
    }

    fn write(&self, data: &[u8]) -> escpos::errors::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(data);
        Ok(())
    }

    fn read(&self, _buf: &mut [u8]) -> escpos::errors::Result<usize> {
        Ok(0)
    }

    fn flush(&self) -> escpos::errors::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fill_the_line_and_wrap_a_long_left_side() {
        assert_eq!(columns("Tea", "2.20", 12), vec!["Tea     2.20"]);
        let lines = columns("A very long product name", "12.50", 16);
        assert!(lines.iter().all(|l| l.chars().count() <= 16), "{lines:?}");
        assert!(lines.last().unwrap().ends_with("12.50"), "{lines:?}");
        assert_eq!(
            lines.concat().replace(' ', "").replace("12.50", ""),
            "Averylongproductname"
        );
    }

    #[test]
    fn wrapping_never_exceeds_the_width_nor_drops_text() {
        for width in [1, 5, 32, 48] {
            let text = "Kassa receipts wrap at spaces, and cut overlongwordswhereithastobe";
            let lines = wrap(text, width);
            assert!(
                lines.iter().all(|l| l.chars().count() <= width),
                "{lines:?}"
            );
            assert_eq!(lines.concat().replace(' ', ""), text.replace(' ', ""));
        }
    }

    #[test]
    fn a_58_mm_roll_gets_32_characters_and_an_80_mm_roll_48() {
        let mut doc = Document::new();
        doc.rule().columns("Total", "9.99");
        assert_eq!(doc.plain_lines(Paper::Mm58)[0].len(), 32);
        assert_eq!(doc.plain_lines(Paper::Mm80)[1].len(), 48);
    }

    #[test]
    fn rendering_pulses_the_drawer_only_when_asked_and_cuts_a_document() {
        let mut doc = Document::new();
        doc.title("Kassa");
        let closed = render(&doc, Paper::Mm80, Drawer::Closed).unwrap();
        let open = render(&doc, Paper::Mm80, Drawer::Open).unwrap();
        let has = |bytes: &[u8], cmd: &[u8]| bytes.windows(cmd.len()).any(|w| w == cmd);
        assert!(!has(&closed, &DRAWER_PULSE));
        assert!(has(&open, &DRAWER_PULSE));
        assert!(has(&closed, &[0x1D, b'V']), "a cut");
        let pulse_only = render(&Document::new(), Paper::Mm80, Drawer::Open).unwrap();
        assert!(has(&pulse_only, &DRAWER_PULSE) && !has(&pulse_only, &[0x1D, b'V']));
    }

    #[test]
    fn what_the_code_page_cannot_print_becomes_a_question_mark() {
        assert_eq!(printable("Café 5 €\tok ✓"), "Café 5 € ok ?");
    }
}
