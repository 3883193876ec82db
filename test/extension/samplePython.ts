/** Code the extension's tests complete and fill: real Python, enough lines for a canvas of several hundred tokens. */
export const SAMPLE_PYTHON = `"""Text wrapping and filling."""

import re

_whitespace = '\\t\\n\\x0b\\x0c\\r '


class TextWrapper:
    """Object for wrapping/filling text."""

    unicode_whitespace_trans = dict.fromkeys(map(ord, _whitespace), ord(' '))

    def __init__(self, width=70, initial_indent="", subsequent_indent="",
                 expand_tabs=True, replace_whitespace=True):
        self.width = width
        self.initial_indent = initial_indent
        self.subsequent_indent = subsequent_indent
        self.expand_tabs = expand_tabs
        self.replace_whitespace = replace_whitespace

    def _munge_whitespace(self, text):
        if self.expand_tabs:
            text = text.expandtabs()
        if self.replace_whitespace:
            text = text.translate(self.unicode_whitespace_trans)
        return text

    def wrap(self, text):
        chunks = self._split_chunks(text)
`;
