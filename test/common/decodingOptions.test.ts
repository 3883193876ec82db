import * as assert from 'node:assert/strict';
import {
  DECODING_OPTION_NAMES,
  DECODING_OPTION_SCHEMA,
  DEFAULT_DECODING_OPTIONS,
  expectedValue,
  isValidOptionValue,
} from '../../common/decodingOptions';
import packageJson from '../../package.json';
import { DECODING_FLAGS } from '../../engine/cli/decodingFlags';

type Contributed = Record<string, Record<string, unknown>>;
const contributed = packageJson.contributes.configuration.properties as unknown as Contributed;

describe('decoding option schema', () => {
  it("is what package.json contributes as settings: type, default, range, values and descriptions", () => {
    for (const name of DECODING_OPTION_NAMES) {
      const option = DECODING_OPTION_SCHEMA[name] as (typeof DECODING_OPTION_SCHEMA)[typeof name] & Record<string, unknown>;
      const setting = contributed[`dlm.${option.setting}`];
      assert.ok(setting, `package.json contributes dlm.${option.setting}`);
      const expected: Record<string, unknown> = {
        type: option.type === 'enum' ? 'string' : option.type,
        default: option.default,
        markdownDescription: option.settingDescription,
      };
      if (option.type === 'enum') {
        expected.enum = option.values;
        expected.enumDescriptions = option.valueDescriptions;
      }
      if (option.minimum !== undefined) expected[option.exclusiveMinimum ? 'exclusiveMinimum' : 'minimum'] = option.minimum;
      if (option.maximum !== undefined) expected.maximum = option.maximum;
      const { order: _order, ...actual } = setting;
      assert.deepEqual(actual, expected, `dlm.${option.setting}`);
    }
  });

  it('gives every option a CLI flag of its type', () => {
    for (const name of DECODING_OPTION_NAMES) {
      const option = DECODING_OPTION_SCHEMA[name];
      const flag = DECODING_FLAGS[option.flag];
      assert.deepEqual(flag.type, option.type === 'enum' ? { choices: option.values } : option.type, option.flag);
    }
    assert.equal(Object.keys(DECODING_FLAGS).length, DECODING_OPTION_NAMES.length);
  });

  it('accepts its own defaults and refuses values out of range, of the wrong type or not listed', () => {
    for (const name of DECODING_OPTION_NAMES) assert.ok(isValidOptionValue(name, DEFAULT_DECODING_OPTIONS[name]), name);
    assert.equal(isValidOptionValue('steps', 0), false);
    assert.equal(isValidOptionValue('steps', 2.5), false);
    assert.equal(isValidOptionValue('steps', '8'), false);
    assert.equal(isValidOptionValue('threshold', 0), false, 'the threshold must be above 0');
    assert.equal(isValidOptionValue('threshold', 1), true);
    assert.equal(isValidOptionValue('threshold', 1.01), false);
    assert.equal(isValidOptionValue('temperature', Infinity), false);
    assert.equal(isValidOptionValue('cache', 'dual'), false);
    assert.equal(isValidOptionValue('cache', 'block-dual'), true);
    assert.equal(expectedValue('threshold'), 'a number in (0, 1]');
    assert.equal(expectedValue('steps'), 'an integer >= 1');
    assert.equal(expectedValue('greedyOrder'), "one of 'confidence', 'random'");
  });
});
