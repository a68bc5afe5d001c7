//! A thermal receipt printer for tests, on loopback: [`Emulator`] listens on a free port like
//! a network printer on 9100, and [`decode`] turns the ESC/POS bytes it got into what a person
//! would see on the paper ([`Printout`]): text lines, QR codes and barcodes, cuts and drawer
//! pulses. It understands the commands a receipt printer driver sends (the `escpos` crate's
//! and the standard ones around them); an unknown command is kept as [`Event::Unknown`] so a
//! test can see it rather than a silently garbled line.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const ESC: u8 = 0x1B;
const GS: u8 = 0x1D;
const DLE: u8 = 0x10;
const LF: u8 = 0x0A;

/// Code page PC858 (ESC t 19), bytes 0x80 to 0xFF: Western European with the euro sign.
const PC858_HIGH: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', 'É', 'æ', 'Æ',
    'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', 'ø', '£', 'Ø', '×', 'ƒ', 'á', 'í', 'ó', 'ú', 'ñ', 'Ñ',
    'ª', 'º', '¿', '®', '¬', '½', '¼', '¡', '«', '»', '░', '▒', '▓', '│', '┤', 'Á', 'Â', 'À', '©',
    '╣', '║', '╗', '╝', '¢', '¥', '┐', '└', '┴', '┬', '├', '─', '┼', 'ã', 'Ã', '╚', '╔', '╩', '╦',
    '╠', '═', '╬', '¤', 'ð', 'Ð', 'Ê', 'Ë', 'È', '€', 'Í', 'Î', 'Ï', '┘', '┌', '█', '▄', '¦', 'Ì',
    '▀', 'Ó', 'ß', 'Ô', 'Ò', 'õ', 'Õ', 'µ', 'þ', 'Þ', 'Ú', 'Û', 'Ù', 'ý', 'Ý', '¯', '´', '\u{AD}',
    '±', '‗', '¾', '¶', '§', '÷', '¸', '°', '¨', '·', '¹', '³', '²', '■', '\u{A0}',
];

/// Code page WPC1252 (ESC t 16), bytes 0x80 to 0x9F (0xA0 on are Latin-1); unassigned: `?`.
const WPC1252_80_9F: [char; 32] = [
    '€', '?', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '?', 'Ž', '?', '?', '‘', '’',
    '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '?', 'ž', 'Ÿ',
];

/// The code table ESC t selected.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum CodePage {
    /// None selected: bytes above 0x7F are read as UTF-8.
    #[default]
    Utf8,
    Pc858,
    Wpc1252,
}

/// One thing the printer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A printed line of text (without its line feed), as it reads.
    Line(String),
    /// A QR code holding this text.
    Qr(String),
    /// A 1D barcode: the ESC/POS symbology number (`GS k m`) and its data.
    Barcode { system: u8, data: String },
    /// The paper was cut.
    Cut,
    /// A pulse to the cash drawer's pin (0: pin 2, 1: pin 5), with its on and off times.
    DrawerPulse { pin: u8, on: u8, off: u8 },
    /// A command this decoder does not know, from its first byte on (decoding stops there).
    Unknown(Vec<u8>),
}

/// What came out of the printer, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Printout {
    pub events: Vec<Event>,
}

impl Printout {
    /// The printed lines of text, blank ones left out, each trimmed.
    pub fn lines(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Line(line) if !line.trim().is_empty() => Some(line.trim().to_owned()),
                _ => None,
            })
            .collect()
    }

    /// All the text, one line per line.
    pub fn text(&self) -> String {
        self.lines().join("\n")
    }

    /// Does some printed line contain `needle`?
    pub fn has_line_with(&self, needle: &str) -> bool {
        self.lines().iter().any(|l| l.contains(needle))
    }

    pub fn cuts(&self) -> usize {
        self.count(|e| matches!(e, Event::Cut))
    }

    pub fn drawer_pulses(&self) -> usize {
        self.count(|e| matches!(e, Event::DrawerPulse { .. }))
    }

    pub fn qr_codes(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Qr(data) => Some(data.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn unknown(&self) -> Vec<Vec<u8>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Unknown(bytes) => Some(bytes.clone()),
                _ => None,
            })
            .collect()
    }

    /// The printout cut into documents: everything up to and including each cut (a trailing
    /// part with no cut is a document too).
    pub fn documents(&self) -> Vec<Printout> {
        let mut docs = Vec::new();
        let mut current = Vec::new();
        for event in &self.events {
            current.push(event.clone());
            if matches!(event, Event::Cut) {
                docs.push(Printout {
                    events: std::mem::take(&mut current),
                });
            }
        }
        if current
            .iter()
            .any(|e| !matches!(e, Event::Line(l) if l.trim().is_empty()))
        {
            docs.push(Printout { events: current });
        }
        docs
    }

    fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|e| pred(e)).count()
    }
}

/// Decodes ESC/POS bytes as a printer would print them.
pub fn decode(bytes: &[u8]) -> Printout {
    let mut decoder = Decoder::default();
    decoder.run(bytes);
    decoder.flush_line();
    Printout {
        events: decoder.events,
    }
}

#[derive(Default)]
struct Decoder {
    events: Vec<Event>,
    line: String,
    code_page: CodePage,
    utf8: Vec<u8>,
    /// The data stored by the last `GS ( k … 1 P 0` (QR code store), printed by `… 1 Q 0`.
    qr_data: Option<String>,
}

impl Decoder {
    fn run(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.step(&bytes[i..]) {
                Some(used) => i += used,
                None => {
                    self.flush_line();
                    self.events.push(Event::Unknown(bytes[i..].to_vec()));
                    return;
                }
            }
        }
    }

    /// Decodes one byte or one command at the start of `b`; how many bytes it took, or `None`
    /// for an unknown or cut-off command.
    fn step(&mut self, b: &[u8]) -> Option<usize> {
        let arg = |n: usize| b.get(n).copied();
        match b[0] {
            LF => {
                self.flush_utf8();
                let line = std::mem::take(&mut self.line);
                self.events.push(Event::Line(line));
                Some(1)
            }
            b'\r' => Some(1),
            ESC => self.esc(b, arg(1)?),
            GS => self.gs(b, arg(1)?),
            DLE => {
                // DLE EOT n (real-time status request): nothing printed.
                (arg(1)? == 0x04).then_some(3)
            }
            byte if byte < 0x20 => None,
            byte => {
                self.text(byte);
                Some(1)
            }
        }
    }

    fn esc(&mut self, b: &[u8], command: u8) -> Option<usize> {
        let arg = |n: usize| b.get(n).copied();
        match command {
            b'@' => Some(2),
            // Style and layout with one argument: bold, underline, double strike, font,
            // rotation, justification, line spacing, code table, character set, upside down.
            b'E' | b'-' | b'G' | b'M' | b'V' | b'a' | b'3' | b'R' | b'{' | b'!' => {
                arg(2)?;
                Some(3)
            }
            b'2' => Some(2),
            b't' => {
                self.flush_utf8();
                self.code_page = match arg(2)? {
                    19 => CodePage::Pc858,
                    16 => CodePage::Wpc1252,
                    _ => CodePage::Utf8,
                };
                Some(3)
            }
            b'd' => {
                // Print and feed n lines: prints what is buffered.
                arg(2)?;
                if !self.line.is_empty() || !self.utf8.is_empty() {
                    self.flush_line();
                }
                Some(3)
            }
            b'p' => {
                let (pin, on, off) = (arg(2)?, arg(3)?, arg(4)?);
                self.events.push(Event::DrawerPulse { pin, on, off });
                Some(5)
            }
            _ => None,
        }
    }

    fn gs(&mut self, b: &[u8], command: u8) -> Option<usize> {
        let arg = |n: usize| b.get(n).copied();
        match command {
            // Size, reverse, smoothing, barcode text position, font, height and width.
            b'!' | b'B' | b'b' | b'H' | b'f' | b'h' | b'w' => {
                arg(2)?;
                Some(3)
            }
            b'P' => {
                arg(3)?;
                Some(4)
            }
            b'V' => {
                self.flush_line();
                let used = match arg(2)? {
                    0 | 1 | 48 | 49 => 3,
                    _ => {
                        arg(3)?;
                        4
                    }
                };
                self.events.push(Event::Cut);
                Some(used)
            }
            b'k' => self.barcode(b),
            b'(' if arg(2)? == b'k' => self.code_2d(b),
            _ => None,
        }
    }

    /// `GS k m d… NUL` (m ≤ 6) or `GS k m n d1…dn` (m ≥ 65).
    fn barcode(&mut self, b: &[u8]) -> Option<usize> {
        let system = *b.get(2)?;
        let (data, used) = if system <= 6 {
            let end = b[3..].iter().position(|&x| x == 0)?;
            (&b[3..3 + end], 3 + end + 1)
        } else {
            let n = usize::from(*b.get(3)?);
            (b.get(4..4 + n)?, 4 + n)
        };
        self.flush_line();
        self.events.push(Event::Barcode {
            system,
            data: String::from_utf8_lossy(data).into_owned(),
        });
        Some(used)
    }

    /// `GS ( k pL pH cn fn …`: the QR code's store (cn 49, fn 80) and print (fn 81) functions;
    /// other functions and symbologies are settings, skipped whole.
    fn code_2d(&mut self, b: &[u8]) -> Option<usize> {
        let len = usize::from(*b.get(3)?) | (usize::from(*b.get(4)?) << 8);
        let body = b.get(5..5 + len)?;
        if let [49, 80, 48, data @ ..] = body {
            self.qr_data = Some(String::from_utf8_lossy(data).into_owned());
        } else if let [49, 81, 48] = body {
            self.flush_line();
            let data = self.qr_data.take().unwrap_or_default();
            self.events.push(Event::Qr(data));
        }
        Some(5 + len)
    }

    fn text(&mut self, byte: u8) {
        if byte < 0x80 {
            self.flush_utf8();
            self.line.push(char::from(byte));
        } else if self.code_page == CodePage::Pc858 {
            self.line.push(PC858_HIGH[usize::from(byte - 0x80)]);
        } else if self.code_page == CodePage::Wpc1252 {
            self.line.push(match byte {
                0x80..=0x9F => WPC1252_80_9F[usize::from(byte - 0x80)],
                _ => char::from(byte),
            });
        } else {
            self.utf8.push(byte);
        }
    }

    fn flush_utf8(&mut self) {
        if !self.utf8.is_empty() {
            let bytes = std::mem::take(&mut self.utf8);
            self.line.push_str(&String::from_utf8_lossy(&bytes));
        }
    }

    fn flush_line(&mut self) {
        self.flush_utf8();
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.events.push(Event::Line(line));
        }
    }
}

/// A network receipt printer on loopback (a raw TCP port, like 9100): keeps every
/// connection's bytes; [`Emulator::printout`] decodes them, connection by connection.
#[derive(Debug)]
pub struct Emulator {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    accept: JoinHandle<()>,
}

impl Emulator {
    /// A printer on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<Emulator> {
        Self::start_on(0).await
    }

    /// A printer on `port` of 127.0.0.1 (0: a free one), e.g. the port of a printer that was
    /// off and is switched on.
    pub async fn start_on(port: u16) -> std::io::Result<Emulator> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn(accept_loop(listener, received.clone()));
        Ok(Emulator {
            addr,
            received,
            accept,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `tcp://127.0.0.1:PORT`, the register's `KASSA_PRINTER` for this printer.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// The raw bytes of every connection so far, in the order they were opened.
    pub fn raw(&self) -> Vec<Vec<u8>> {
        self.received
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Everything printed so far.
    pub fn printout(&self) -> Printout {
        let mut all = Printout::default();
        for bytes in self.raw() {
            all.events.extend(decode(&bytes).events);
        }
        all
    }

    /// Waits (at most `timeout`) until the printout satisfies `done`; the printout either way.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&Printout) -> bool) -> Printout {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let printout = self.printout();
            if done(&printout) || tokio::time::Instant::now() >= deadline {
                return printout;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `n` documents (cuts) have printed; the printout either way.
    pub async fn wait_for_cuts(&self, n: usize, timeout: Duration) -> Printout {
        self.wait_for(timeout, |p| p.cuts() >= n).await
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, received: Arc<Mutex<Vec<Vec<u8>>>>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let index = {
            let mut all = received
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            all.push(Vec::new());
            all.len() - 1
        };
        let received = received.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                received
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)[index]
                    .extend_from_slice(&buf[..n]);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_cuts_and_pulses_are_decoded() {
        let mut bytes = vec![ESC, b'@', ESC, b't', 19, ESC, b'a', 1, ESC, b'E', 1];
        bytes.extend_from_slice(b"Kassa\n");
        bytes.extend_from_slice(&[ESC, b'E', 0, GS, b'!', 0x11]);
        bytes.extend_from_slice(b"Total 12.50 ");
        bytes.push(0xD5); // € in PC858
        bytes.push(LF);
        bytes.extend_from_slice(&[ESC, b'p', 0, 25, 250, ESC, b'd', 3, GS, b'V', b'A', 0]);
        let printout = decode(&bytes);
        assert_eq!(printout.lines(), vec!["Kassa", "Total 12.50 €"]);
        assert_eq!(printout.cuts(), 1);
        assert_eq!(printout.drawer_pulses(), 1);
        assert!(printout.unknown().is_empty());
    }

    #[test]
    fn windows_1252_text_reads_back() {
        let mut bytes = vec![ESC, b't', 16];
        bytes.extend_from_slice(b"Caf");
        bytes.extend_from_slice(&[0xE9, b' ', 0x80, b' ', b'-', LF]);
        assert_eq!(decode(&bytes).lines(), vec!["Café € -"]);
    }

    #[test]
    fn a_qr_code_is_read_back_from_its_store_and_print_functions() {
        let data = b"STORE-1-R1-000042";
        let len = u8::try_from(data.len() + 3).unwrap_or(0);
        let mut bytes = vec![GS, b'(', b'k', 4, 0, 49, 65, 50, 0];
        bytes.extend_from_slice(&[GS, b'(', b'k', 3, 0, 49, 67, 6]);
        bytes.extend_from_slice(&[GS, b'(', b'k', len, 0, 49, 80, 48]);
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(&[GS, b'(', b'k', 3, 0, 49, 81, 48]);
        assert_eq!(decode(&bytes).qr_codes(), vec!["STORE-1-R1-000042"]);
    }

    #[test]
    fn an_unknown_command_is_kept_not_guessed() {
        let printout = decode(&[b'a', LF, ESC, b'Z', 1, 2]);
        assert_eq!(printout.lines(), vec!["a"]);
        assert_eq!(printout.unknown(), vec![vec![ESC, b'Z', 1, 2]]);
    }

    #[test]
    fn documents_split_at_cuts() {
        let mut bytes = b"one\n".to_vec();
        bytes.extend_from_slice(&[GS, b'V', b'A', 0]);
        bytes.extend_from_slice(b"two\n");
        bytes.extend_from_slice(&[GS, b'V', 1]);
        let docs = decode(&bytes).documents();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].lines(), vec!["two"]);
    }
}
