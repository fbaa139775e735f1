import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      '.tools/**',
      '.otter/**',
      '.otter-test/**',
      '.otter-bench/**',
      'coverage/**',
      // Generated from GET /api/openapi.json by `make api-client`; the drift test keeps it true.
      'libs/api-client/src/generated/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/apps/**', '../../apps/*'],
              message: 'Never import from another app; move shared code to a lib.',
            },
            { group: ['**/libs/*/src/**', '../../libs/**'], message: 'Import libs through #otter/<lib>.' },
          ],
        },
      ],
    },
  },
  {
    // System tests compose whole apps (in-process or as real processes); apps and libs never may.
    files: ['test/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
