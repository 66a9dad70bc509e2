//! The printable credentials of a prefix batch (vouchers to hand out):
//! A4, PDF built-in fonts only, so no font file has to ship with the
//! binary. Built-in fonts cover Latin-1; other characters print as '?'
//! (prefix-batch usernames and passwords are ASCII by construction).

use printpdf::{BuiltinFont, IndirectFontRef, Mm, PdfDocument, PdfLayerReference};

const ROWS_PER_PAGE: usize = 34;

fn latin(s: &str) -> String {
    s.chars()
        .map(|c| {
            if (c as u32) < 0x7f && !c.is_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

pub fn credentials_pdf(
    batch_name: &str,
    expiration: Option<&str>,
    creds: &[(String, String)],
) -> Result<Vec<u8>, String> {
    let title = format!("Batch {}", latin(batch_name));
    let (doc, page, layer) = PdfDocument::new(&title, Mm(210.0), Mm(297.0), "credentials");
    let font = |f| {
        doc.add_builtin_font(f)
            .map_err(|e| format!("pdf font: {e}"))
    };
    let regular = font(BuiltinFont::Helvetica)?;
    let bold = font(BuiltinFont::HelveticaBold)?;
    let mono = font(BuiltinFont::Courier)?;
    let pages = creds.len().div_ceil(ROWS_PER_PAGE).max(1);
    let header = |layer: &PdfLayerReference, n: usize, bold: &IndirectFontRef, regular| {
        layer.use_text(&title, 16.0, Mm(20.0), Mm(280.0), bold);
        let sub = match expiration {
            Some(e) => format!("Valid through {e} (UTC)  -  page {n} of {pages}"),
            None => format!("No expiration  -  page {n} of {pages}"),
        };
        layer.use_text(sub, 10.0, Mm(20.0), Mm(273.0), regular);
        layer.use_text("Username", 11.0, Mm(20.0), Mm(262.0), bold);
        layer.use_text("Password", 11.0, Mm(110.0), Mm(262.0), bold);
    };
    let mut current = doc.get_page(page).get_layer(layer);
    header(&current, 1, &bold, &regular);
    for (i, (user, pass)) in creds.iter().enumerate() {
        let row = i % ROWS_PER_PAGE;
        if i > 0 && row == 0 {
            let (p, l) = doc.add_page(Mm(210.0), Mm(297.0), "credentials");
            current = doc.get_page(p).get_layer(l);
            header(&current, i / ROWS_PER_PAGE + 1, &bold, &regular);
        }
        let y = 254.0 - row as f32 * 7.0;
        current.use_text(latin(user), 11.0, Mm(20.0), Mm(y), &mono);
        current.use_text(latin(pass), 11.0, Mm(110.0), Mm(y), &mono);
    }
    doc.save_to_bytes().map_err(|e| format!("pdf: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pdf_has_pages() {
        let creds: Vec<(String, String)> = (0..40)
            .map(|i| (format!("user{i:02}"), format!("pass{i:02}word")))
            .collect();
        let pdf = super::credentials_pdf("Café", Some("2030-01-01"), &creds).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.contains("/Count 2"), "two pages expected");
    }
}
