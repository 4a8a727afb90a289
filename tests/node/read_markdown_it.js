// VS Code's notebook Markdown renderer, approximated: markdown-it + @vscode/markdown-it-katex.
// Reads a JSON list of Markdown strings on stdin and prints, as JSON, the text each one shows:
// text as rendered (entities decoded, escapes applied), typeset math as ⟦TeX⟧, blocks joined
// by blank lines. Usage: node read_markdown_it.js NODE_DIR < strings.json
'use strict';
const path = require('path');
const fs = require('fs');

const root = process.argv[2];
const markdownIt = require(path.join(root, 'node_modules', 'markdown-it'));
const katexPlugin = require(path.join(root, 'node_modules', '@vscode', 'markdown-it-katex'));
const md = markdownIt().use(katexPlugin.default || katexPlugin);

function inlineText(children) {
  return children.map((token) => {
    switch (token.type) {
      case 'math_inline': return `⟦${token.content}⟧`;
      case 'softbreak': return ' ';
      case 'hardbreak': return '\n';
      case 'text': case 'code_inline': case 'html_inline': return token.content;
      default: return '';
    }
  }).join('');
}

function read(markdown) {
  const blocks = [];
  for (const token of md.parse(markdown, {})) {
    if (token.type === 'inline') blocks.push(inlineText(token.children));
    else if (token.type === 'math_block' || token.type === 'math_block_eqno') blocks.push(`⟦${token.content.trim()}⟧`);
    else if (token.type === 'fence' || token.type === 'code_block') blocks.push(token.content.trimEnd());
  }
  return blocks.join('\n\n');
}

const strings = JSON.parse(fs.readFileSync(0, 'utf8'));
process.stdout.write(JSON.stringify(strings.map(read)));
