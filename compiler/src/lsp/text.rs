//! Byte offsets (the compiler's spans) to LSP positions (line, UTF-16 column) and back.

use lsp_types::{Position, Range};

use crate::ast::Span;

/// Where each line of one text starts.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    /// The index of `text`.
    #[must_use]
    pub fn new(text: &str) -> LineIndex {
        LineIndex { starts: std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect() }
    }

    /// The position of byte `offset` (clamped to the text).
    #[must_use]
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let offset = floor_char_boundary(text, offset.min(text.len()));
        let line = self.starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.starts[line];
        let character = text[start..offset].encode_utf16().count();
        Position { line: to_u32(line), character: to_u32(character) }
    }

    /// The range of `span`.
    #[must_use]
    pub fn range(&self, text: &str, span: Span) -> Range {
        Range { start: self.position(text, span.start as usize), end: self.position(text, span.end as usize) }
    }

    /// The byte offset of `position`; a column past the end of its line means the line's end, a
    /// line past the end of the text means the text's end.
    #[must_use]
    pub fn offset(&self, text: &str, position: Position) -> usize {
        let Some(&start) = self.starts.get(position.line as usize) else { return text.len() };
        let line_end = self.starts.get(position.line as usize + 1).map_or(text.len(), |&n| n - 1);
        let mut units = 0usize;
        for (i, c) in text[start..line_end].char_indices() {
            if units >= position.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        line_end
    }

    /// The byte range of line `line` without its line break.
    #[must_use]
    pub fn line(&self, text: &str, line: usize) -> std::ops::Range<usize> {
        let start = self.starts.get(line).copied().unwrap_or(text.len());
        let end = self.starts.get(line + 1).map_or(text.len(), |&n| n - 1);
        start..end.max(start)
    }

    /// The line holding byte `offset`.
    #[must_use]
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset).saturating_sub(1)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_count_utf16_units_and_round_trip() {
        let text = "a\n# é😀 x\nlast";
        let index = LineIndex::new(text);
        let x = text.find('x').expect("there");
        // `# é😀 x`: `#`, space, é (1 unit), 😀 (2 units), space.
        assert_eq!(index.position(text, x), Position { line: 1, character: 6 });
        assert_eq!(index.offset(text, Position { line: 1, character: 6 }), x);
        assert_eq!(
            index.offset(text, Position { line: 1, character: 99 }),
            text.find("\nlast").expect("there")
        );
        assert_eq!(index.offset(text, Position { line: 9, character: 0 }), text.len());
        assert_eq!(index.position(text, text.len()), Position { line: 2, character: 4 });
    }
}
